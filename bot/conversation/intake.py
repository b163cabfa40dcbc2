"""Taking updates in exactly once, whatever the messenger: the bookkeeping shared by the long
polling loops (bot/telegram/polling.py, bot/max/polling.py) and the webhook endpoints
(bot/telegram/webhook.py, bot/max/webhook.py).

A front end keeps what is its own: the API calls, reading an update, what it confirms with (an
offset, a marker), the secret's header. What is the same lives here: an update is handled at
most `concurrency` at a time, counted acknowledged only on a receipt that says so
(bot/conversation/receipts.py), handled again otherwise; a stop takes no more and waits for
those in progress up to a grace period, then cancels the rest (rolled back, delivered again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from enum import Enum
from typing import ClassVar, Generic, TypeVar

from bot.conversation.receipts import Receipt, longer

K = TypeVar("K", bound=Hashable)
# Updates handled at once by one process, polling or webhook; more wait their turn (a webhook's
# requests stay open: Telegram keeps at most `max_connections` of them, 40 by default). Each
# holds a database connection while it runs: this leaves room in the engine's pool (5 + 10
# overflow) for recording update ids, state reads, the API and the notification dispatcher.
MAX_CONCURRENT_UPDATES = 8
# How long a stop waits for updates in progress (below systemd's and Docker's default grace
# period before SIGKILL).
DRAIN_TIMEOUT_SECONDS = 20.0
CANCEL_GRACE_SECONDS = 2.0  # how long a drain waits for the updates it cancelled to end
T = TypeVar("T")


class UpdateState(Enum):
    RUNNING = "running"
    ACKNOWLEDGED = "acknowledged"
    AGAIN = "again"  # not acknowledged: handled again when the messenger returns it


@dataclass(frozen=True)
class Messenger:
    """How a front end's warnings name its updates and who delivers them again, and the
    front end's logger they go to."""

    updates: str  # "updates", "MAX updates"
    name: str  # "Telegram", "MAX"
    log: logging.Logger


async def drain(tasks: set[asyncio.Task[Receipt]], grace_seconds: float, of: Messenger) -> None:
    """Wait up to `grace_seconds` for `tasks`; cancel those still running (rolled back and
    unanswered: the messenger delivers them again)."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=grace_seconds)
    if pending:
        of.log.warning(
            "%d %s still in progress after %.0f s; cancelled, %s delivers them again",
            len(pending),
            of.updates,
            grace_seconds,
            of.name,
        )
        for task in pending:
            task.cancel()
        # Bounded too: a handling that does not end when cancelled must not hold up the stop.
        await asyncio.wait(pending, timeout=CANCEL_GRACE_SECONDS)


@dataclass
class PollingIntake(Generic[K]):
    """What a long polling loop knows of its updates, by key (an update id, an identity):
    their states, the tasks handling them, the pauses after failures, the stop."""

    concurrency: int
    of: Messenger
    states: dict[K, UpdateState] = field(default_factory=dict)
    tasks: dict[K, asyncio.Task[Receipt]] = field(default_factory=dict)
    poll_pause: float = 0.0  # after a failed poll
    retry_pause: float = 0.0  # after an update that must come again
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.concurrency)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        self._stopping.set()
        self._changed.set()

    async def wait_turn(self, refresh: float, ready: Callable[[], bool] | None = None) -> bool:
        """Before a poll: the pause after a failure, then `refresh` while updates are in
        progress, cut short when one finishes (not waited at all if one finished during the
        poll before: what it frees is asked for at once) and `ready()` says a poll is worth
        making now. False if a stop came meanwhile."""
        pause = max(self.poll_pause, self.retry_pause)
        if pause:
            self._changed.clear()
            await self._sleep(pause)
            if self.stopping:
                return False
        if self.tasks:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + refresh
            while True:
                await self._sleep(deadline - loop.time())
                if self.stopping:
                    return False
                if not self.tasks or ready is None or ready() or loop.time() >= deadline:
                    break
                self._changed.clear()  # finished, but not worth a poll yet: wait on
        self._changed.clear()  # from the poll on, an update that finishes is noticed
        return True

    def poll_failed(self) -> float:
        """A poll failed: the pause before the next one, longer each time."""
        self.poll_pause = longer(self.poll_pause)
        return self.poll_pause

    def poll_succeeded(self) -> None:
        self.poll_pause = 0.0

    async def unless_stopped(self, request: Awaitable[T]) -> T | None:
        """The answer of `request`, or None if a stop cut it short (the request is cancelled)."""
        pending = asyncio.ensure_future(request)
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({pending, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pending
            return None
        return pending.result()

    def taken(self, key: K) -> bool:
        """In progress, or done but not yet confirmed to the messenger: not taken again."""
        return self.states.get(key) in (UpdateState.RUNNING, UpdateState.ACKNOWLEDGED)

    def start(self, key: K, handle: Callable[[], Awaitable[Receipt]], name: str) -> None:
        """Handle the update `key` (`handle()`), at most `concurrency` at once."""
        self.states[key] = UpdateState.RUNNING
        task = asyncio.create_task(self._handle(handle), name=name)
        self.tasks[key] = task
        task.add_done_callback(lambda done: self._finished(key, done))

    async def _handle(self, handle: Callable[[], Awaitable[Receipt]]) -> Receipt:
        async with self._slots:
            return await handle()

    def _finished(self, key: K, task: asyncio.Task[Receipt]) -> None:
        self.tasks.pop(key, None)
        if not task.cancelled() and task.exception() is None and task.result().acknowledged:
            self.states[key] = UpdateState.ACKNOWLEDGED
            self.retry_pause = 0.0
        else:
            self.states[key] = UpdateState.AGAIN
            self.retry_pause = longer(self.retry_pause)
        self._changed.set()

    def acknowledged(self, key: K) -> bool:
        return self.states.get(key) is UpdateState.ACKNOWLEDGED

    async def _sleep(self, seconds: float) -> None:
        """Wait `seconds`, or less when an update finishes or a stop is asked for (or has,
        since the event was last cleared)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), seconds)

    async def drain(self, grace_seconds: float) -> None:
        await drain(set(self.tasks.values()), grace_seconds, self.of)


class WebhookIntake:
    """What a webhook endpoint knows of the updates it was sent: the tasks handling them (at
    most `concurrency` at once), and whether it is stopping."""

    def __init__(self, concurrency: int, of: Messenger) -> None:
        self.of = of
        self._tasks: set[asyncio.Task[Receipt]] = set()
        self._stopping = False
        self._slots = asyncio.Semaphore(concurrency)

    async def receive(self, handle: Callable[[], Awaitable[Receipt]], name: str) -> Receipt | None:
        """The receipt of `handle()`; None when stopping (nothing taken: it comes again). An
        update cut off by a stop gets an empty receipt (rolled back, not acknowledged)."""
        if self._stopping:
            return None
        task = asyncio.create_task(self._process(handle), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            # Shielded: a client that gives up does not cut the update's handling short.
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.cancelled():
                raise  # this request itself was cancelled (the server is going away)
            return Receipt()  # cut off by a stop: rolled back, not acknowledged

    async def _process(self, handle: Callable[[], Awaitable[Receipt]]) -> Receipt:
        async with self._slots:
            return await handle()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def idle(self) -> None:
        """Wait until every update taken in so far has been processed."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def stop(self, grace_seconds: float) -> None:
        """Take no more updates (they get 503 and come again); wait up to `grace_seconds` for
        those in progress; cancel the rest: rolled back and unanswered, delivered again."""
        self._stopping = True
        await drain(set(self._tasks), grace_seconds, self.of)


@dataclass(kw_only=True)
class PollingLoop(Generic[K]):
    """What a messenger's long polling loop is given and keeps: how long a poll waits
    (`timeout`, seconds), how often it asks again while updates are in progress (`refresh`),
    how long a stop waits for them (`drain`), how many run at once; and its intake. The
    messenger's poller adds its calls and what it confirms with."""

    MESSENGER: ClassVar[Messenger]

    timeout: int
    refresh: float
    drain: float = DRAIN_TIMEOUT_SECONDS
    concurrency: int = MAX_CONCURRENT_UPDATES
    _intake: PollingIntake[K] = field(init=False)

    def __post_init__(self) -> None:
        self._intake = PollingIntake(self.concurrency, self.MESSENGER)

    def stop(self) -> None:
        self._intake.stop()
