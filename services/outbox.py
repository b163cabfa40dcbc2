"""Delivering the outbox: lease-based claiming, outcomes, retries, pacing, a generic worker.

Rows are written in the transaction of the change that caused them (services/notifications.py);
a worker per channel (a messenger: "telegram", "max"; or "webhook") claims them with a lease,
sends them through a channel-specific `Sender` and records the outcome. Several workers may
share the table:

* a claim takes only rows no one holds a live lease on, and never a row of a chat (or another
  ordering key) while an older row of that chat is pending or held, so a chat gets its messages
  in order and at most one of them is in flight at any time, across all workers;
* PostgreSQL claims with ``SELECT … FOR UPDATE SKIP LOCKED``; SQLite (one writer at a time)
  with one conditional ``UPDATE … RETURNING`` that leases only rows still free;
* a lease is renewed while its worker holds the row and expires when the worker dies, so a
  crash or restart re-sends whatever was not recorded as sent. Delivery is therefore at least
  once: a row whose send went out just before a crash is sent again.

A receiver that asks to slow down (429) is obeyed, within limits:

* a wait is at most `MAX_RETRY_AFTER` (10 minutes), whatever the receiver asks: a longer one (or
  a nonsensical `Retry-After: 99999999999999999999`) is waited that long, then asked again; and
  at least `MIN_RETRY_AFTER` (a second);
* a 429 for one chat (one ordering key) holds back that chat only; only when 429s came for
  `FLOOD_KEYS` different chats within `FLOOD_WINDOW` seconds, or the receiver asks as a whole
  (`RetryAfter.overall`: the web module's 429, a rejected bot token), does every send pause and
  the rate drop by a fifth (`Flood`).

A worker that holds rows but records no outcome for them, beyond the waits it was told to make,
is stalled (`OutboxWorker.stalled_for`): /healthz and /metrics show it.

Nothing here imports aiogram: the Telegram sender lives in bot/telegram/sender.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, Literal, Protocol, TypeVar

from sqlalchemy import CursorResult, and_, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute, aliased

from services.clock import Clock
from storage import outbox_signal
from storage.models import Binding, OutboxMessage
from storage.repositories import Repositories

log = logging.getLogger(__name__)

PENDING, SENT, FAILED, HELD = "pending", "sent", "failed", "held"
TELEGRAM = "telegram"
ERROR_MAX_LENGTH = 500

OrderKey = Literal["chat_id", "application_number"]

# The waits a 429 imposes, in seconds (docs/API.md, docs/notifications.md): at most ten minutes,
# whatever the receiver asks; at least one, so a "retry now" cannot make a busy loop.
MIN_RETRY_AFTER = 1.0
MAX_RETRY_AFTER = 600.0
FLOOD_KEYS = 3  # 429s for this many different chats ...
FLOOD_WINDOW = 10.0  # ... within this many seconds: the receiver as a whole is over its limit


def capped_retry_after(seconds: float) -> float:
    """A receiver's retry-after as a wait we make: MIN_RETRY_AFTER to MAX_RETRY_AFTER seconds.

    Takes ints of any size (Telegram's retry_after, a Retry-After header's digits) without
    converting them first: float() of a huge int overflows."""
    return float(min(max(seconds, MIN_RETRY_AFTER), MAX_RETRY_AFTER))


def _order_column(model: Any, key: OrderKey) -> InstrumentedAttribute[int | None]:
    column: InstrumentedAttribute[int | None] = getattr(model, key)
    return column


def default_owner() -> str:
    """A lease owner name unique to this worker: host, process and a random part."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _clip(reason: str) -> str:
    return reason if len(reason) <= ERROR_MAX_LENGTH else reason[: ERROR_MAX_LENGTH - 1] + "…"


def _rowcount(result: Any) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


# --------------------------------------------------------------------------------------------
# Outcomes of one send, as a channel's sender reports them
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """Delivered; `message_id` is the id the messenger gave the message (None for webhooks)."""

    message_id: int | str | None = None


@dataclass(frozen=True)
class Retry:
    """A transient failure (network, timeout, 5xx): try again later, up to the retry limit."""

    reason: str


@dataclass(frozen=True)
class RetryAfter:
    """The receiver asked to slow down (429): the row waits `seconds` (capped at
    MAX_RETRY_AFTER); no attempt is spent. `overall`: the answer concerns every send (one
    receiver, a rejected token), not only this row's chat; see `Flood` for the rule."""

    seconds: float
    reason: str
    overall: bool = False


@dataclass(frozen=True)
class Blocked:
    """The chat cannot be reached until the user comes back (blocked the bot, chat gone)."""

    reason: str


@dataclass(frozen=True)
class Failed:
    """A permanent failure: retrying would not help."""

    reason: str


Outcome = Sent | Retry | RetryAfter | Blocked | Failed


class Undeliverable(Exception):
    """Raised while preparing a row that can no longer be sent (its application, account or
    chat is gone, the user muted pushes...): the row is marked failed with this reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------------------------
# Retries
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter: the n-th retry waits between half and all of
    min(cap, base * 2**n) seconds; after `max_attempts` failed attempts the row is failed."""

    base: float = 2.0
    cap: float = 600.0
    max_attempts: int = 12

    def delay(self, failed_attempts: int, rng: random.Random) -> timedelta:
        ceiling = min(self.cap, self.base * 2 ** max(failed_attempts - 1, 0))
        return timedelta(seconds=ceiling / 2 + rng.uniform(0, ceiling / 2))


# --------------------------------------------------------------------------------------------
# Chat blocking: the binding's flag and the chat's rows move together, per messenger
# --------------------------------------------------------------------------------------------


async def chat_blocked(
    session: AsyncSession, messenger: str, chat_id: int, now: datetime, reason: str | None = None
) -> int:
    """A messenger's chat blocked the bot (or is gone): mark its binding blocked and hold its
    pending rows.

    A row some worker is sending right now keeps its lease: that worker records its outcome
    (a 403 holds it too). Returns how many rows were held.
    """
    await session.execute(
        update(Binding)
        .where(
            Binding.messenger == messenger,
            Binding.chat_id == chat_id,
            Binding.blocked.is_(False),
        )
        .values(blocked=True)
        .execution_options(synchronize_session=False)
    )
    values: dict[str, Any] = {"state": HELD, "lease_until": None, "lease_owner": None}
    if reason is not None:
        values["last_error"] = _clip(reason)
    result = await session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.channel == messenger,
            OutboxMessage.chat_id == chat_id,
            OutboxMessage.state == PENDING,
            or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until <= now),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result)


async def chat_unblocked(session: AsyncSession, messenger: str, chat_id: int, now: datetime) -> int:
    """The user is back (wrote to the bot, unblocked it): clear the flag, release held rows.

    Returns how many rows were released; they are sent in their original order.
    """
    await session.execute(
        update(Binding)
        .where(
            Binding.messenger == messenger,
            Binding.chat_id == chat_id,
            Binding.blocked.is_(True),
        )
        .values(blocked=False)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.channel == messenger,
            OutboxMessage.chat_id == chat_id,
            OutboxMessage.state == HELD,
        )
        .values(state=PENDING, available_at=now)
        .execution_options(synchronize_session=False)
    )
    released = _rowcount(result)
    if released:
        outbox_signal.written(session, messenger)
    return released


# --------------------------------------------------------------------------------------------
# The queue: one short transaction per operation
# --------------------------------------------------------------------------------------------


@dataclass
class OutboxQueue:
    """The outbox rows of one channel, as seen by one worker (the lease owner)."""

    session_factory: async_sessionmaker[AsyncSession]
    channel: str
    lease: timedelta
    owner: str = field(default_factory=default_owner)
    order_key: OrderKey = "chat_id"

    def _mine(self, row_id: int) -> Any:
        return and_(
            OutboxMessage.id == row_id,
            OutboxMessage.lease_owner == self.owner,
            OutboxMessage.state == PENDING,
        )

    async def claim(self, limit: int, now: datetime) -> list[OutboxMessage]:
        """Lease up to `limit` deliverable rows, oldest first, at most one per chat."""
        if limit <= 0:
            return []
        row = OutboxMessage
        older = aliased(OutboxMessage)
        key, older_key = _order_column(row, self.order_key), _order_column(older, self.order_key)
        # An older row of the same chat still waiting (pending, leased or held) goes first.
        waiting_before = (
            select(older.id)
            .where(
                older.channel == self.channel,
                older_key == key,
                older.id < row.id,
                older.state.in_((PENDING, HELD)),
            )
            .exists()
        )
        candidates = (
            select(row.id)
            .where(
                row.channel == self.channel,
                row.state == PENDING,
                row.available_at <= now,
                or_(row.lease_until.is_(None), row.lease_until <= now),
                ~waiting_before,
            )
            .order_by(row.id)
            .limit(limit)
        )
        async with self.session_factory() as session:
            if session.get_bind().dialect.name != "sqlite":
                candidates = candidates.with_for_update(skip_locked=True, of=row)
            claimed = await session.scalars(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(candidates.scalar_subquery()))
                .values(lease_until=now + self.lease, lease_owner=self.owner)
                .returning(OutboxMessage)
                .execution_options(synchronize_session=False)
            )
            rows = sorted(claimed.all(), key=lambda message: message.id)
            await session.commit()
        return rows

    async def renew(self, row_ids: Iterable[int], now: datetime) -> int:
        """Extend the leases this worker still holds; returns how many it still holds."""
        ids = list(row_ids)
        if not ids:
            return 0
        async with self.session_factory() as session:
            result = await session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id.in_(ids),
                    OutboxMessage.lease_owner == self.owner,
                    OutboxMessage.state == PENDING,
                )
                .values(lease_until=now + self.lease)
                .execution_options(synchronize_session=False)
            )
            await session.commit()
        return _rowcount(result)

    async def mark_sent(
        self,
        row: OutboxMessage,
        message_id: int | str | None,
        now: datetime,
        next_in_chat_after: timedelta | None = None,
    ) -> bool:
        """Record delivery. `next_in_chat_after` keeps the chat's next row back that long, so
        workers sharing the table respect a per-chat rate too. False if the lease was lost."""
        async with self.session_factory() as session:
            result = await session.execute(
                update(OutboxMessage)
                .where(self._mine(row.id))
                .values(
                    state=SENT,
                    sent_at=now,
                    message_id=None if message_id is None else str(message_id),
                    lease_until=None,
                    lease_owner=None,
                )
                .execution_options(synchronize_session=False)
            )
            key = getattr(row, self.order_key)
            if next_in_chat_after and key is not None:
                not_before = now + next_in_chat_after
                await session.execute(
                    update(OutboxMessage)
                    .where(
                        OutboxMessage.channel == self.channel,
                        _order_column(OutboxMessage, self.order_key) == key,
                        OutboxMessage.state == PENDING,
                        OutboxMessage.available_at < not_before,
                    )
                    .values(available_at=not_before)
                    .execution_options(synchronize_session=False)
                )
            await session.commit()
        return _rowcount(result) == 1

    async def retry_or_fail(
        self,
        row: OutboxMessage,
        reason: str,
        now: datetime,
        policy: RetryPolicy,
        rng: random.Random,
    ) -> bool:
        """Count a failed attempt: schedule a retry with backoff, or fail the row at the limit.

        Returns True if a retry was scheduled, False if the row failed (or the lease was lost).
        """
        attempts = row.attempts + 1
        if attempts >= policy.max_attempts:
            await self.fail(row, f"{reason} (attempt {attempts} of {policy.max_attempts})", now)
            return False
        async with self.session_factory() as session:
            await session.execute(
                update(OutboxMessage)
                .where(self._mine(row.id))
                .values(
                    attempts=attempts,
                    available_at=now + policy.delay(attempts, rng),
                    last_error=_clip(reason),
                    lease_until=None,
                    lease_owner=None,
                )
                .execution_options(synchronize_session=False)
            )
            await session.commit()
        return True

    async def fail(
        self, row: OutboxMessage, reason: str, now: datetime, *, attempted: bool = True
    ) -> bool:
        """Give up on the row with the reason; `attempted` counts it as one more attempt."""
        async with self.session_factory() as session:
            result = await session.execute(
                update(OutboxMessage)
                .where(self._mine(row.id))
                .values(
                    state=FAILED,
                    attempts=row.attempts + (1 if attempted else 0),
                    last_error=_clip(reason),
                    lease_until=None,
                    lease_owner=None,
                )
                .execution_options(synchronize_session=False)
            )
            await session.commit()
        return _rowcount(result) == 1

    async def release(
        self,
        row_ids: Iterable[int],
        available_at: datetime | None = None,
        reason: str | None = None,
    ) -> int:
        """Give rows back unsent without spending an attempt (429, shutdown)."""
        ids = list(row_ids)
        if not ids:
            return 0
        values: dict[str, Any] = {"lease_until": None, "lease_owner": None}
        if available_at is not None:
            values["available_at"] = available_at
        if reason is not None:
            values["last_error"] = _clip(reason)
        async with self.session_factory() as session:
            result = await session.execute(
                update(OutboxMessage)
                .where(
                    OutboxMessage.id.in_(ids),
                    OutboxMessage.lease_owner == self.owner,
                    OutboxMessage.state == PENDING,
                )
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            await session.commit()
        return _rowcount(result)

    async def hold(self, row: OutboxMessage, reason: str, now: datetime) -> int:
        """The row's chat is unreachable: hold this row and the chat's other pending rows and
        mark the chat's link blocked. They resume with `chat_unblocked`."""
        if row.chat_id is None:
            await self.fail(row, reason, now)
            return 0
        async with self.session_factory() as session:
            await session.execute(
                update(OutboxMessage)
                .where(self._mine(row.id))
                .values(
                    state=HELD,
                    attempts=row.attempts + 1,
                    last_error=_clip(reason),
                    lease_until=None,
                    lease_owner=None,
                )
                .execution_options(synchronize_session=False)
            )
            held = await chat_blocked(session, row.channel, row.chat_id, now)
            await session.commit()
        return held + 1

    async def next_available_at(self, now: datetime) -> datetime | None:
        """When the earliest row scheduled for later becomes due (retries, per-chat spacing)."""
        async with self.session_factory() as session:
            result: datetime | None = await session.scalar(
                select(func.min(OutboxMessage.available_at)).where(
                    OutboxMessage.channel == self.channel,
                    OutboxMessage.state == PENDING,
                    OutboxMessage.available_at > now,
                )
            )
        return result


# --------------------------------------------------------------------------------------------
# Pacing
# --------------------------------------------------------------------------------------------


class Flood:
    """Tells a chat's 429 from the receiver's overall limit.

    Telegram answers 429 both when one chat gets more than its share (about one message a
    second) and when the bot as a whole sends too much (about 30 a second), and its answer does
    not say which. The first holds back that chat only; the second shows as 429s for several
    chats at once: `keys` different chats within `window` seconds.
    """

    def __init__(self, keys: int = FLOOD_KEYS, window: float = FLOOD_WINDOW) -> None:
        self.keys = keys
        self.window = window
        self._last: dict[int | None, float] = {}  # chat -> when it last got a 429

    def overall(self, key: int | None, now: float) -> bool:
        """Record a 429 for `key` at `now` (monotonic seconds); whether it is the overall limit."""
        self._last = {k: t for k, t in self._last.items() if t > now - self.window}
        self._last[key] = now
        return len(self._last) >= self.keys


class RateLimiter:
    """At most `rate` sends per second, evenly spaced, for the whole worker.

    `pause` stops every send for a while (a 429's retry_after); `slow_down` takes a fifth off
    the rate, and each success wins a little of it back, up to the configured rate.
    """

    def __init__(
        self, rate: float, *, minimum: float = 1.0, cut: float = 0.8, recovery: float = 0.1
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.current = rate
        self.minimum = min(minimum, rate)
        self.cut = cut
        self.recovery = recovery
        self._next = 0.0
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        async with self._lock:  # first come, first served
            while True:
                now = loop.time()
                wait = max(self._next - now, self._paused_until - now)
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            interval = 1.0 / self.current
            # Keep to the schedule after a slightly late wake-up, but never catch up in a burst
            # after being idle.
            start = self._next if self._next > now - interval else now
            self._next = start + interval

    @property
    def paused_until(self) -> float:
        """Until when (the loop's clock) every send waits; in the past when none does."""
        return self._paused_until

    def pause(self, seconds: float) -> None:
        until = asyncio.get_running_loop().time() + capped_retry_after(seconds)
        self._paused_until = max(self._paused_until, until)

    def slow_down(self) -> None:
        self.current = max(self.minimum, self.current * self.cut)

    def succeeded(self) -> None:
        self.current = min(self.rate, self.current + self.recovery)


@dataclass
class _Turns:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ready: float = 0.0  # the loop's clock: when the chat may be written to again
    waiting: int = 0  # holding or waiting for the lock


class ChatPacer:
    """At most one call to a chat every `interval` seconds, counted from the answer to one to
    the request of the next (so the calls reach the receiver at least that far apart, whatever
    the network's jitter); first come, first served.

    One pacer is shared by everything a process sends to a chat: the outbox worker's pushes and,
    where a messenger's limit counts the bot's replies too, the front end's replies
    (bot/max/client.py); a worker without one paces its own sends.
    """

    PRUNE_EVERY = 60.0  # seconds between two sweeps of the chats that are quiet again

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._chats: dict[int, _Turns] = {}
        self._pruned_at = 0.0

    @contextlib.asynccontextmanager
    async def turn(self, chat: int) -> AsyncIterator[None]:
        """The chat's turn: entered once the chat is free and its interval has passed; the
        next turn waits `interval` from the moment this one ends."""
        loop = asyncio.get_running_loop()
        self._prune(loop.time())
        turns = self._chats.setdefault(chat, _Turns())
        turns.waiting += 1
        try:
            async with turns.lock:
                delay = turns.ready - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                try:
                    yield
                finally:
                    turns.ready = loop.time() + self.interval
        finally:
            turns.waiting -= 1

    def _prune(self, now: float) -> None:
        if now - self._pruned_at < self.PRUNE_EVERY:
            return
        self._pruned_at = now
        self._chats = {
            chat: turns for chat, turns in self._chats.items() if turns.waiting or turns.ready > now
        }


# --------------------------------------------------------------------------------------------
# The worker
# --------------------------------------------------------------------------------------------

P = TypeVar("P")


class Sender(Protocol[P]):
    """A channel: prepares a claimed row (render it; raise Undeliverable if it cannot be sent)
    and sends it, reporting the outcome instead of raising."""

    async def prepare(self, repo: Repositories, row: OutboxMessage) -> P: ...

    async def send(self, row: OutboxMessage, prepared: P) -> Outcome: ...


@dataclass
class WorkerStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    held: int = 0
    rate_limited: int = 0
    lost_leases: int = 0


class OutboxWorker(Generic[P]):
    """Claims a channel's rows, paces them, sends them through the sender, records outcomes.

    `run()` until `stop()`; `drain()` (tests, one-off runs) sends whatever is due now and returns.
    """

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        sender: Sender[P],
        *,
        channel: str,
        clock: Clock,
        rate: float,
        per_chat_interval: float = 0.0,
        pacer: ChatPacer | None = None,
        lease: float = 30.0,
        batch: int | None = None,
        poll_interval: float = 1.0,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
        owner: str | None = None,
        order_key: OrderKey = "chat_id",
        stop_grace: float = 5.0,
    ) -> None:
        self.session_factory = session_factory
        self.sender = sender
        self.clock = clock
        self.queue = OutboxQueue(
            session_factory,
            channel,
            timedelta(seconds=lease),
            owner or default_owner(),
            order_key,
        )
        self.limiter = RateLimiter(rate)
        self.flood = Flood()
        # The chats' pacing: the one given (shared with whatever else of this process writes
        # to the channel's chats), else the worker's own, `per_chat_interval` apart.
        self.pacer = pacer or (ChatPacer(per_chat_interval) if per_chat_interval else None)
        self.per_chat_interval = self.pacer.interval if self.pacer else 0.0
        self.lease = lease
        # About two seconds of sending claimed at a time: enough to keep the pace, little to
        # hand back on a stop.
        self.batch = batch or max(10, int(rate * 2))
        self.poll_interval = poll_interval
        self.policy = policy or RetryPolicy()
        self.rng = rng or random.Random()
        self.stop_grace = stop_grace
        self.stats = WorkerStats()
        self._claimed: dict[int, OutboxMessage] = {}
        self._in_flight: set[int] = set()  # rows being sent or recorded
        self._tasks: dict[asyncio.Task[None], int] = {}  # delivery task -> its row id
        # Since when (the loop's clock) the worker has owed outcomes without recording one, and
        # when a delivery last ended without one (its row comes back when its lease runs out).
        self._owed_since: float | None = None
        self._unrecorded_at = -math.inf
        self._stopping = asyncio.Event()
        self._wakeup = asyncio.Event()
        self._progress = asyncio.Event()
        self.listener: outbox_signal.Listener | None = None  # on PostgreSQL, while running

    @property
    def channel(self) -> str:
        return self.queue.channel

    def wake(self) -> None:
        """New rows were written: look for them now rather than at the next poll."""
        self._wakeup.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wakeup.set()
        self._progress.set()

    def stalled_for(self) -> float:
        """Seconds the worker has owed outcomes without recording one — it holds rows, or its
        deliveries keep ending without an outcome — beyond the pause a 429 imposed (0 while it
        makes progress or has nothing to do). Every send ends within its timeout and every wait
        within MAX_RETRY_AFTER, so a few minutes of this is a fault."""
        if self._owed_since is None:
            return 0.0
        now = asyncio.get_running_loop().time()
        return max(0.0, now - max(self._owed_since, self.limiter.paused_until))

    async def run(self) -> None:
        """Deliver until stopped; on stop, let sends in flight finish briefly, hand back the
        rest unsent (their leases are cleared, so another worker or a restart takes them).

        A commit that wrote rows of this channel wakes the worker at once: in this process
        directly, from other processes on PostgreSQL through LISTEN/NOTIFY
        (storage/outbox_signal.py); polling every `poll_interval` stays the fallback."""
        heartbeat = asyncio.create_task(self._heartbeat())
        unregister, listening = self._listen()
        try:
            while not self._stopping.is_set():
                if len(self._claimed) > self.batch // 2:
                    await self._wait(self._progress, None)
                    continue
                try:
                    started = await self._claim_and_start(self.batch - len(self._claimed))
                except Exception:  # the database may be briefly unavailable: keep going
                    log.exception("%s outbox: claiming failed", self.channel)
                    started = 0
                if started == 0:
                    self._settle()
                    await self._wait(self._wakeup, await self._idle_wait())
        finally:
            unregister()
            for task in (heartbeat, *listening):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._shutdown()

    def _listen(self) -> tuple[Callable[[], None], list[asyncio.Task[None]]]:
        """Be woken by the commits that write this channel's rows: those of this process, and
        on PostgreSQL those of other processes (a listener task)."""
        engine = outbox_signal.engine_of(self.session_factory)
        if engine is None:  # a session factory without an engine of its own: polling only
            return (lambda: None), []
        unregister = outbox_signal.register(engine, self.channel, self.wake)
        if not outbox_signal.Listener.applies(engine):
            return unregister, []
        self.listener = outbox_signal.Listener(engine, self.channel, self.wake)
        return unregister, [asyncio.create_task(self.listener.run(self._stopping))]

    async def drain(self) -> int:
        """Send everything due now (in order, within the limits) and return how many rows
        were handled; rows scheduled for later stay pending."""
        handled = 0
        while True:
            started = await self._claim_and_start(self.batch)
            if started == 0 and not self._tasks:
                return handled
            handled += started
            if self._tasks:
                await asyncio.wait(set(self._tasks))

    # -- internals -------------------------------------------------------------------------

    async def _wait(self, event: asyncio.Event, seconds: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)
        event.clear()

    async def _idle_wait(self) -> float:
        now = self.clock.now()
        try:
            due = await self.queue.next_available_at(now)
        except Exception:
            log.exception("%s outbox: polling failed", self.channel)
            return self.poll_interval
        if due is None:
            return self.poll_interval
        return min(self.poll_interval, max((due - now).total_seconds(), 0.01))

    async def _claim_and_start(self, limit: int) -> int:
        rows = await self.queue.claim(limit, self.clock.now())
        if not rows:
            return 0
        if self._owed_since is None:
            self._owed_since = asyncio.get_running_loop().time()
        for row in rows:
            self._claimed[row.id] = row
        try:
            prepared, undeliverable = await self._prepare(rows)
            for row, reason in undeliverable:
                await self.queue.fail(row, reason, self.clock.now(), attempted=False)
                self.stats.failed += 1
                self._claimed.pop(row.id, None)
                self._recorded()
        except Exception:
            # The database went away while rendering: hand the rows back for a later try.
            for row in rows:
                self._claimed.pop(row.id, None)
            with contextlib.suppress(Exception):
                await self.queue.release([row.id for row in rows])
            raise
        for row in rows:
            if row.id in prepared:
                task = asyncio.create_task(self._deliver(row, prepared[row.id]))
                self._tasks[task] = row.id
                task.add_done_callback(self._forget)
        return len(rows)

    async def _prepare(
        self, rows: list[OutboxMessage]
    ) -> tuple[dict[int, P], list[tuple[OutboxMessage, str]]]:
        """Render the rows in one session; those that cannot be sent come back with a reason."""
        prepared: dict[int, P] = {}
        undeliverable: list[tuple[OutboxMessage, str]] = []
        async with self.session_factory() as session:
            repo = Repositories(session)
            for row in rows:
                try:
                    prepared[row.id] = await self.sender.prepare(repo, row)
                except Undeliverable as error:
                    undeliverable.append((row, error.reason))
                except SQLAlchemyError:
                    raise
                except Exception as error:  # a bug in one renderer must not stop the others
                    log.exception("%s outbox: preparing row %s failed", self.channel, row.id)
                    undeliverable.append((row, f"rendering failed: {type(error).__name__}"))
        return prepared, undeliverable

    async def _deliver(self, row: OutboxMessage, prepared: P) -> None:
        loop = asyncio.get_running_loop()
        key: int | None = getattr(row, self.queue.order_key)
        try:
            async with self._turn(key):
                await self.limiter.acquire()
                # From here until the outcome is recorded a stop waits for this row (briefly):
                # a send cut off now would be sent again by whoever takes the row next.
                self._in_flight.add(row.id)
                outcome = await self.sender.send(row, prepared)
            await self._record(row, outcome)
        except asyncio.CancelledError:
            raise  # stays claimed: _shutdown hands it back
        except Exception:
            # Database trouble (or a sender that raised): stop renewing the lease, so the row
            # comes back when it runs out. Nothing was recorded: the worker still owes it.
            log.exception("%s outbox: delivering row %s failed", self.channel, row.id)
            self._claimed.pop(row.id, None)
            self._unrecorded_at = loop.time()
        else:
            self._claimed.pop(row.id, None)
            self._recorded()
        finally:
            self._in_flight.discard(row.id)
            self._progress.set()

    def _turn(self, key: int | None) -> contextlib.AbstractAsyncContextManager[None]:
        """The chat's turn with the pacer (none to wait for without one, or without a key)."""
        if key is None or self.pacer is None:
            return contextlib.nullcontext()
        return self.pacer.turn(key)

    async def _record(self, row: OutboxMessage, outcome: Outcome) -> None:
        now = self.clock.now()
        if isinstance(outcome, Sent):
            self.limiter.succeeded()
            spacing = timedelta(seconds=self.per_chat_interval) if self.per_chat_interval else None
            if await self.queue.mark_sent(row, outcome.message_id, now, spacing):
                self.stats.sent += 1
            else:
                self.stats.lost_leases += 1
                log.warning("%s outbox: row %s was sent after its lease ran out", *self._ids(row))
        elif isinstance(outcome, RetryAfter):
            self.stats.rate_limited += 1
            wait = capped_retry_after(outcome.seconds)
            key: int | None = getattr(row, self.queue.order_key)
            loop_now = asyncio.get_running_loop().time()
            # The flood rule sees every 429, also those that concern every send anyway.
            if self.flood.overall(key, loop_now) or outcome.overall:
                self.limiter.pause(wait)
                self.limiter.slow_down()
                log.warning(
                    "%s outbox: rate limited, every send pauses %.1f s, rate now %.1f/s",
                    self.channel,
                    wait,
                    self.limiter.current,
                )
            else:
                # The row goes back with the wait: the chat's later rows queue behind it, in the
                # database, so other workers hold back that chat too.
                log.info("%s outbox: rate limited, row %s waits %.1f s", self.channel, row.id, wait)
            await self.queue.release([row.id], now + timedelta(seconds=wait), outcome.reason)
        elif isinstance(outcome, Retry):
            if await self.queue.retry_or_fail(row, outcome.reason, now, self.policy, self.rng):
                self.stats.retried += 1
            else:
                self.stats.failed += 1
                log.warning("%s outbox: row %s failed: %s", *self._ids(row), outcome.reason)
        elif isinstance(outcome, Blocked):
            self.stats.held += await self.queue.hold(row, outcome.reason, now)
            log.info("%s outbox: chat of row %s unreachable, its rows held", *self._ids(row))
        else:
            await self.queue.fail(row, outcome.reason, now)
            self.stats.failed += 1
            log.warning("%s outbox: row %s failed: %s", *self._ids(row), outcome.reason)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task, None)

    def _recorded(self) -> None:
        """An outcome was recorded: the worker owes outcomes only for the rows it still holds,
        counted from now."""
        self._owed_since = asyncio.get_running_loop().time() if self._claimed else None

    def _settle(self) -> None:
        """Nothing was due: nothing is owed, unless a delivery ended without an outcome so
        recently that its row is still leased and will come back (a failure that repeats with
        every lease is a stall too)."""
        quiet = asyncio.get_running_loop().time() - self._unrecorded_at
        if not self._claimed and quiet > self.lease + self.poll_interval:
            self._owed_since = None

    def _ids(self, row: OutboxMessage) -> tuple[str, int]:
        return self.channel, row.id

    async def _heartbeat(self) -> None:
        interval = max(self.lease / 3, 0.2)
        while True:
            await asyncio.sleep(interval)
            held = list(self._claimed)
            try:
                renewed = await self.queue.renew(held, self.clock.now())
            except Exception:
                log.exception("%s outbox: renewing leases failed", self.channel)
                continue
            if renewed < len(held):
                # Rows finish while we renew, so a shortfall is usually harmless; log it only.
                log.debug("%s outbox: renewed %s of %s leases", self.channel, renewed, len(held))

    async def _shutdown(self) -> None:
        # Rows still waiting for their turn go back at once; sends in flight get a moment to end.
        for task, row_id in list(self._tasks.items()):
            if row_id not in self._in_flight:
                task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.stop_grace)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        if self._claimed:
            try:
                await self.queue.release(list(self._claimed))
            except Exception:
                log.exception("%s outbox: handing back rows on stop failed", self.channel)
            self._claimed.clear()
        self._owed_since = None
