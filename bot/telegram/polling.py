"""Long polling that confirms an update to Telegram only once its handling is acknowledged.

Telegram keeps an update until getUpdates is called with an offset above its id. aiogram's own
polling asks for the next batch (confirming the last) while the updates of the batch are still
being handled, so a process killed then loses them. Here the offset never passes an update that
is not acknowledged (bot/conversation/receipts.py: committed, handled before, or failed and
recorded): the updates of a killed or stopped process come again after the restart, and the
record of the handled ones (storage/updates.py) skips those.

Updates are handled concurrently (one at a time per user: the events isolation of the
Dispatcher), at most `concurrency` at once. While some are in progress the loop asks
again from the lowest of them every REFRESH_SECONDS, or as soon as a slot's worth of room is
free in hand (Telegram answers at once: those are still there), so new updates do not wait
behind a slow one. Each
poll asks for no more than it keeps in hand (`limit`: the updates it knows from the offset on,
which come first, and new ones up to four times the slots: running, and next in line, which a
stop finishes too): the rest wait at Telegram instead of coming, whole, in every answer until
they can be taken (docs/BENCHMARKS.md).
The bookkeeping (states, tasks, pauses, stop and drain) is bot/conversation/intake.py's, shared
with MAX's polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
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

from bot.conversation.intake import Messenger, PollingLoop, UpdateState
from bot.conversation.receipts import Receipt
from bot.telegram.feed import feed
from bot.telegram.webhook import until_stopped

log = logging.getLogger(__name__)

POLL_TIMEOUT_SECONDS = 25  # Telegram's long poll, when nothing is in progress
REFRESH_SECONDS = 0.5  # how often to look for new updates while some are in progress
GET_UPDATES_LIMIT = 100  # the most Telegram sends in one answer
IN_HAND_SLOTS = 4  # updates taken at most, in slots' worth: running, and waiting for a slot


RawUpdate = dict[str, Any]


class RawGetUpdates(GetUpdates):
    """getUpdates whose answer is left as JSON: while an update is in progress every refresh
    gets it again, with every later one (the offset stays at the lowest update in progress),
    and aiogram parsed each of them into its dozens of models every time. Only an update not
    taken before is parsed (`Poller._take`): under load most of the bot process's CPU went to
    parsing updates it already had (docs/BENCHMARKS.md)."""

    __returning__ = list[RawUpdate]


TELEGRAM = Messenger("updates", "Telegram", log)


@dataclass
class Poller(PollingLoop[int]):
    """Polls Telegram for `dp` until `stop()`; `run()` returns after the drain."""

    MESSENGER = TELEGRAM

    bot: Bot
    dp: Dispatcher
    timeout: int = field(default=POLL_TIMEOUT_SECONDS, kw_only=True)
    refresh: float = field(default=REFRESH_SECONDS, kw_only=True)
    _next: int | None = field(default=None, init=False)  # one above the highest update id seen

    @property
    def _tasks(self) -> dict[int, asyncio.Task[Receipt]]:
        return self._intake.tasks

    @property
    def offset(self) -> int | None:
        """The offset to ask with: the lowest update not acknowledged, else the next one."""
        states = self._intake.states
        waiting = [key for key, state in states.items() if state is not UpdateState.ACKNOWLEDGED]
        return min(waiting) if waiting else self._next

    async def run(self) -> None:
        intake = self._intake
        allowed = self.dp.resolve_used_update_types()
        try:
            while not intake.stopping:
                if not await intake.wait_turn(self.refresh, self._worth_a_poll):
                    break
                offset = self._forget_confirmed()
                try:
                    updates = await self._get_updates(offset, allowed)
                except (TelegramNetworkError, TelegramServerError, TelegramConflictError) as error:
                    log.warning(
                        "getUpdates failed (%s); polling again in %.0f s",
                        type(error).__name__,
                        intake.poll_failed(),
                    )
                    continue
                if updates is None:
                    break  # stopped while waiting
                intake.poll_succeeded()
                for update in updates:
                    self._take(update)
        finally:
            await intake.drain(self.drain)
            await self._confirm()

    # -- internals -----------------------------------------------------------------------------

    async def _get_updates(self, offset: int | None, allowed: list[str]) -> list[RawUpdate] | None:
        """One getUpdates, long if nothing is in progress; None if a stop cut it short (what it
        would have returned stays with Telegram: the offset was not moved). The updates stay
        JSON until taken (`_take`)."""
        method = RawGetUpdates(
            offset=offset,
            limit=self._limit(),
            timeout=0 if self._tasks else self.timeout,
            allowed_updates=allowed,
        )
        answer = await self._intake.unless_stopped(
            self.bot(method, request_timeout=self.timeout + 10)
        )
        return None if answer is None else cast(list[RawUpdate], answer)

    def _worth_a_poll(self) -> bool:
        """While updates are in progress, a poll (which gets every update from the lowest in
        progress again, whole, to decode) is made once a slot's worth of room is free in hand,
        or every `refresh`: one per finished update decoded the same updates over and over,
        the tenth of a busy process's time (docs/BENCHMARKS.md)."""
        return self._room() >= self.concurrency

    def _room(self) -> int:
        return max(0, IN_HAND_SLOTS * self.concurrency - len(self._tasks))

    def _limit(self) -> int:
        """How many updates to ask for: those known from the offset on (in progress, done but
        not yet confirmed, or to be handled again: `_forget_confirmed` kept only them), which
        Telegram sends first, and new ones up to IN_HAND_SLOTS times the slots in hand (those
        beyond the slots wait in the process for one, and a stop finishes them too)."""
        return max(1, min(GET_UPDATES_LIMIT, len(self._intake.states) + self._room()))

    def _take(self, raw: RawUpdate) -> None:
        update_id = int(raw["update_id"])
        self._next = max(self._next or 0, update_id + 1)
        if self._intake.taken(update_id):
            return  # in progress, or done but not yet confirmed to Telegram
        try:
            update = Update.model_validate(raw, context={"bot": self.bot})
        except ValidationError:  # not an update aiogram understands: nothing to handle
            log.warning("update %s could not be read; skipped", update_id)
            self._intake.states[update_id] = UpdateState.ACKNOWLEDGED
            return
        self._intake.start(update_id, lambda: self._handle(update), name=f"update-{update_id}")

    async def _handle(self, update: Update) -> Receipt:
        return await feed(self.dp, self.bot, update)

    def _forget_confirmed(self) -> int | None:
        """The offset to ask with; what lies below it is confirmed by asking and forgotten."""
        offset = self.offset
        if offset is not None:
            states = self._intake.states
            self._intake.states = {k: v for k, v in states.items() if k >= offset}
        return offset

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
