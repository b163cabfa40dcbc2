"""Long polling of MAX (`GET /updates` with `marker`) that confirms an update only once its
handling is acknowledged: bot/polling.py's design, with MAX's markers.

MAX keeps an update until a `GET /updates` passes a marker beyond it; the answer's `marker`
points past the updates it returned (docs/MAX.md). Updates carry no sequence number of their
own, so the loop remembers each answer's marker with the identities of its updates
(bot/max/updates.py), and asks with the latest marker all of whose updates are acknowledged
(bot/receipts.py: committed, handled before, or failed and recorded), else with the marker it
asked with before: MAX then returns the unconfirmed updates again, and those handled or in
progress are skipped (in memory here, by the record of handled updates after a restart).
An update of a killed or stopped process comes again after the restart.

Updates are handled concurrently (one at a time per user: the runner's locks), at most
`concurrency` at once. While some are in progress the loop asks again every `refresh` seconds
without waiting (MAX allows 2 polls a second), so new updates do not wait behind a slow one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum

from bot.conversation.receipts import Receipt, longer
from bot.max.client import MaxClient, MaxError
from bot.max.updates import UPDATE_TYPES, JsonDict, update_identity

log = logging.getLogger(__name__)

POLL_TIMEOUT_SECONDS = 30  # MAX's long poll (its documented maximum for polling since 05.2026)
REFRESH_SECONDS = 1.0  # how often to look for new updates while some are in progress
MAX_CONCURRENT_UPDATES = 8  # as in webhook mode: each holds a database connection
DRAIN_TIMEOUT_SECONDS = 20.0  # how long a stop waits for updates in progress

Feed = Callable[[JsonDict], Awaitable[Receipt]]


class _State(Enum):
    RUNNING = "running"
    ACKNOWLEDGED = "acknowledged"
    AGAIN = "again"  # not acknowledged: handled again when MAX returns it


def identity_of(update: JsonDict) -> str:
    """The update's identity; a malformed one (no identity) gets one from its contents."""
    identity = update_identity(update)
    if identity is not None:
        return identity
    return hashlib.sha256(json.dumps(update, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class MaxPoller:
    """Polls MAX for `feed` until `stop()`; `run()` returns after the drain."""

    client: MaxClient
    feed: Feed
    timeout: int = POLL_TIMEOUT_SECONDS
    refresh: float = REFRESH_SECONDS
    drain: float = DRAIN_TIMEOUT_SECONDS
    concurrency: int = MAX_CONCURRENT_UPDATES
    marker: int | None = None  # what the next poll confirms up to (None: nothing yet)
    _states: dict[str, _State] = field(default_factory=dict)
    _tasks: dict[str, asyncio.Task[Receipt]] = field(default_factory=dict)
    # The answers since `marker`: the marker each pointed to, and the updates it returned.
    _answers: list[tuple[int, list[str]]] = field(default_factory=list)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _poll_pause: float = 0.0
    _retry_pause: float = 0.0

    def stop(self) -> None:
        self._stopping.set()
        self._changed.set()

    async def run(self) -> None:
        slots = asyncio.Semaphore(self.concurrency)
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
                marker = self._advance()
                try:
                    answer = await self._get_updates(marker)
                except MaxError as error:
                    self._poll_pause = longer(self._poll_pause)
                    log.warning(
                        "GET /updates failed (%s); polling again in %.0f s",
                        error.status,
                        self._poll_pause,
                    )
                    continue
                if answer is None:
                    break  # stopped while waiting
                self._poll_pause = 0.0
                updates, next_marker = answer
                identities = [identity_of(update) for update in updates]
                if next_marker is not None:
                    if self._answers and self._answers[-1][0] == next_marker:
                        self._answers.pop()  # the same updates again, maybe fewer
                    self._answers.append((next_marker, identities))
                for identity, update in zip(identities, updates, strict=True):
                    self._take(identity, update, slots)
        finally:
            await self._drain()
            await self._confirm()

    # -- internals -----------------------------------------------------------------------------

    def _advance(self) -> int | None:
        """The marker to ask with: that of the latest answer whose updates are all
        acknowledged, else the one asked with before. What it confirms is forgotten."""
        for position in range(len(self._answers) - 1, -1, -1):
            next_marker, identities = self._answers[position]
            if all(self._states.get(i) is _State.ACKNOWLEDGED for i in identities):
                confirmed = {i for _, ids in self._answers[: position + 1] for i in ids}
                later = {i for _, ids in self._answers[position + 1 :] for i in ids}
                for identity in confirmed - later:
                    self._states.pop(identity, None)
                self._answers = self._answers[position + 1 :]
                self.marker = next_marker
                break
        return self.marker

    async def _get_updates(self, marker: int | None) -> tuple[list[JsonDict], int | None] | None:
        """One GET /updates, long if nothing is in progress; None if a stop cut it short (the
        marker was passed, its updates are acknowledged: what the answer would have brought
        stays with MAX)."""
        request = asyncio.ensure_future(
            self.client.updates(marker, wait=0 if self._tasks else self.timeout, types=UPDATE_TYPES)
        )
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
        return request.result()

    def _take(self, identity: str, update: JsonDict, slots: asyncio.Semaphore) -> None:
        if self._states.get(identity) in (_State.RUNNING, _State.ACKNOWLEDGED):
            return  # in progress, or done but not yet confirmed to MAX
        self._states[identity] = _State.RUNNING
        task = asyncio.create_task(self._handle(update, slots), name=f"max-update-{identity}")
        self._tasks[identity] = task
        task.add_done_callback(lambda done: self._finished(identity, done))

    async def _handle(self, update: JsonDict, slots: asyncio.Semaphore) -> Receipt:
        async with slots:
            return await self.feed(update)

    def _finished(self, identity: str, task: asyncio.Task[Receipt]) -> None:
        self._tasks.pop(identity, None)
        if not task.cancelled() and task.exception() is None and task.result().acknowledged:
            self._states[identity] = _State.ACKNOWLEDGED
            self._retry_pause = 0.0
        else:
            self._states[identity] = _State.AGAIN
            self._retry_pause = longer(self._retry_pause)
        self._changed.set()

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
                "%d MAX updates still in progress after %.0f s; cancelled, MAX delivers them again",
                len(pending),
                self.drain,
            )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _confirm(self) -> None:
        """Tell MAX what is acknowledged, so a restart does not get it again (it would be
        skipped all the same)."""
        before = self.marker
        marker = self._advance()
        if marker is None or marker == before:
            return
        try:
            await self.client.updates(marker, wait=0, limit=1, types=UPDATE_TYPES)
        except MaxError as error:  # the updates come again and are skipped
            log.info("could not confirm MAX updates on stop: %s", error.status)
