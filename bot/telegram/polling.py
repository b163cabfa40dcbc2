"""Long polling that confirms an update to Telegram only once its handling is acknowledged.

Telegram keeps an update until getUpdates is called with an offset above its id. aiogram's own
polling asks for the next batch (confirming the last) while the updates of the batch are still
being handled, so a process killed then loses them. Here the offset never passes an update that
is not acknowledged (bot/conversation/receipts.py: committed, handled before, or failed and
recorded): the updates of a killed or stopped process come again after the restart, and the
record of the handled ones (storage/updates.py) skips those.

Updates are handled concurrently (one at a time per user: the events isolation of the
Dispatcher), at most MAX_CONCURRENT_UPDATES at once. While some are in progress the loop asks
again from the lowest of them every REFRESH_SECONDS (Telegram answers at once: those are still
there), so new updates do not wait behind a slow one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, cast

from aiogram import Bot, Dispatcher
from aiogram.exceptions import (
    TelegramConflictError,
    TelegramNetworkError,
    TelegramServerError,
)
from aiogram.methods import GetUpdates
from aiogram.types import Update
from pydantic import ValidationError

from bot.conversation.receipts import Receipt, longer
from bot.telegram.feed import feed
from bot.telegram.webhook import until_stopped

log = logging.getLogger(__name__)

POLL_TIMEOUT_SECONDS = 25  # Telegram's long poll, when nothing is in progress
REFRESH_SECONDS = 0.5  # how often to look for new updates while some are in progress
MAX_CONCURRENT_UPDATES = 8  # as in webhook mode: each holds a database connection
DRAIN_TIMEOUT_SECONDS = 20.0  # how long a stop waits for updates in progress


RawUpdate = dict[str, Any]


class RawGetUpdates(GetUpdates):
    """getUpdates whose answer is left as JSON: while an update is in progress every refresh
    gets it again, with every later one (the offset stays at the lowest update in progress),
    and aiogram parsed each of them into its dozens of models every time. Only an update not
    taken before is parsed (`Poller._take`): under load most of the bot process's CPU went to
    parsing updates it already had (docs/BENCHMARKS.md)."""

    __returning__ = list[RawUpdate]


class _State(Enum):
    RUNNING = "running"
    ACKNOWLEDGED = "acknowledged"
    AGAIN = "again"  # not acknowledged: handled again when Telegram returns it


@dataclass
class Poller:
    """Polls Telegram for `dp` until `stop()`; `run()` returns after the drain."""

    bot: Bot
    dp: Dispatcher
    timeout: int = POLL_TIMEOUT_SECONDS
    refresh: float = REFRESH_SECONDS
    drain: float = DRAIN_TIMEOUT_SECONDS
    concurrency: int = MAX_CONCURRENT_UPDATES
    _states: dict[int, _State] = field(default_factory=dict)
    _tasks: dict[int, asyncio.Task[Receipt]] = field(default_factory=dict)
    _next: int | None = None  # one above the highest update id seen
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _poll_pause: float = 0.0  # after a failed getUpdates
    _retry_pause: float = 0.0  # after an update that must come again

    def stop(self) -> None:
        self._stopping.set()
        self._changed.set()

    @property
    def offset(self) -> int | None:
        """The offset to ask with: the lowest update not acknowledged, else the next one."""
        waiting = [key for key, state in self._states.items() if state is not _State.ACKNOWLEDGED]
        return min(waiting) if waiting else self._next

    async def run(self) -> None:
        slots = asyncio.Semaphore(self.concurrency)
        allowed = self.dp.resolve_used_update_types()
        try:
            while not self._stopping.is_set():
                pause = max(self._poll_pause, self._retry_pause)
                if pause:
                    await self._sleep(pause)
                    if self._stopping.is_set():
                        break
                if self._tasks:
                    await self._sleep(self.refresh)
                    if self._stopping.is_set():
                        break
                offset = self._forget_confirmed()
                try:
                    updates = await self._get_updates(offset, allowed)
                except (TelegramNetworkError, TelegramServerError, TelegramConflictError) as error:
                    self._poll_pause = longer(self._poll_pause)
                    log.warning(
                        "getUpdates failed (%s); polling again in %.0f s",
                        type(error).__name__,
                        self._poll_pause,
                    )
                    continue
                if updates is None:
                    break  # stopped while waiting
                self._poll_pause = 0.0
                for update in updates:
                    self._take(update, slots)
        finally:
            await self._drain()
            await self._confirm()

    # -- internals -----------------------------------------------------------------------------

    async def _get_updates(self, offset: int | None, allowed: list[str]) -> list[RawUpdate] | None:
        """One getUpdates, long if nothing is in progress; None if a stop cut it short (what it
        would have returned stays with Telegram: the offset was not moved). The updates stay
        JSON until taken (`_take`)."""
        method = RawGetUpdates(
            offset=offset, timeout=0 if self._tasks else self.timeout, allowed_updates=allowed
        )
        request = asyncio.ensure_future(self.bot(method, request_timeout=self.timeout + 10))
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({request, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not request.done():
            request.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await request
            return None
        return cast(list[RawUpdate], request.result())

    def _take(self, raw: RawUpdate, slots: asyncio.Semaphore) -> None:
        update_id = int(raw["update_id"])
        self._next = max(self._next or 0, update_id + 1)
        if self._states.get(update_id) in (_State.RUNNING, _State.ACKNOWLEDGED):
            return  # in progress, or done but not yet confirmed to Telegram
        try:
            update = Update.model_validate(raw, context={"bot": self.bot})
        except ValidationError:  # not an update aiogram understands: nothing to handle
            log.warning("update %s could not be read; skipped", update_id)
            self._states[update_id] = _State.ACKNOWLEDGED
            return
        self._states[update_id] = _State.RUNNING
        task = asyncio.create_task(self._handle(update, slots), name=f"update-{update_id}")
        self._tasks[update_id] = task
        task.add_done_callback(lambda done: self._finished(update_id, done))

    async def _handle(self, update: Update, slots: asyncio.Semaphore) -> Receipt:
        async with slots:
            return await feed(self.dp, self.bot, update)

    def _finished(self, update_id: int, task: asyncio.Task[Receipt]) -> None:
        self._tasks.pop(update_id, None)
        if not task.cancelled() and task.exception() is None and task.result().acknowledged:
            self._states[update_id] = _State.ACKNOWLEDGED
            self._retry_pause = 0.0
        else:
            self._states[update_id] = _State.AGAIN
            self._retry_pause = longer(self._retry_pause)
        self._changed.set()

    def _forget_confirmed(self) -> int | None:
        """The offset to ask with; what lies below it is confirmed by asking and forgotten."""
        offset = self.offset
        if offset is not None:
            self._states = {k: v for k, v in self._states.items() if k >= offset}
        return offset

    async def _sleep(self, seconds: float) -> None:
        """Wait `seconds`, or less when an update finishes or a stop is asked for."""
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), seconds)

    async def _drain(self) -> None:
        if not self._tasks:
            return
        tasks = set(self._tasks.values())
        _, pending = await asyncio.wait(tasks, timeout=self.drain)
        if pending:
            log.warning(
                "%d updates still in progress after %.0f s; cancelled, Telegram delivers them "
                "again",
                len(pending),
                self.drain,
            )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _confirm(self) -> None:
        """Tell Telegram what is acknowledged, so a restart does not get it again (it would be
        skipped all the same)."""
        offset = self._forget_confirmed()
        if offset is None:
            return
        try:
            await self.bot.get_updates(offset=offset, limit=1, timeout=0, request_timeout=5)
        except Exception as error:  # the updates come again and are skipped
            log.info("could not confirm updates on stop: %s", type(error).__name__)


async def serve_polling(
    bot: Bot, dp: Dispatcher, poller: Poller | None = None, stop: asyncio.Event | None = None
) -> None:
    """Polling mode until a stop signal (or `stop`): the Dispatcher's startup, polling, the
    drain, its shutdown (closes the FSM storage)."""
    poller = poller or Poller(bot, dp)
    workflow_data: dict[str, Any] = {"dispatcher": dp, "bots": [bot], **dp.workflow_data}
    await dp.emit_startup(bot=bot, **workflow_data)
    try:
        await bot.delete_webhook(drop_pending_updates=False)
        polling = asyncio.create_task(poller.run(), name="polling")
        stopping = asyncio.create_task(until_stopped(stop), name="stop-signal")
        await asyncio.wait({polling, stopping}, return_when=asyncio.FIRST_COMPLETED)
        poller.stop()
        stopping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopping
        await polling  # drains; re-raises if polling itself failed
    finally:
        await dp.emit_shutdown(bot=bot, **workflow_data)
