"""Waking the outbox's dispatchers the moment a transaction that wrote rows for them commits.

Whatever writes outbox rows says so in its session (`written(session, channel)`: OutboxRepo does
it for every row it adds, `chat_unblocked` for the rows it releases). When that transaction
commits:

* every dispatcher of the same process on the same database and channel is woken at once
  (`register`): the conversation's updates, the API's writes, the digest, the sign-in pages —
  whatever session committed, through any session factory;
* on PostgreSQL the transaction also sends ``NOTIFY dpo_outbox`` (one per channel written, the
  channel and this process's token as its payload) just before its COMMIT. PostgreSQL delivers
  a notification only when its transaction commits, never on a rollback, to every connection
  that listens: the dispatchers of other processes (`Listener`, started by each worker), which
  wake as the ones in the process do. A process ignores its own notifications (it woke its
  dispatchers already).

Polling stays the fallback: a notification lost while a listener reconnects costs at most a poll
interval, and a listener wakes its dispatcher whenever it (re)connects. SQLite has no
notifications: only the dispatchers in the writing process are woken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "dpo_outbox"
PROCESS = uuid.uuid4().hex  # this process's token in a notification's payload
_WRITTEN = "dpo_outbox_written"  # session.info key: the channels written in this transaction
_NOTIFY = text("SELECT pg_notify(:name, :payload)")

Wake = Callable[[], None]

# Database (its URL) -> channel -> the wake-ups of this process's dispatchers.
_wakers: dict[str, dict[str, list[Wake]]] = {}


def written(session: AsyncSession | Session, channel: str) -> None:
    """This transaction writes (or releases) outbox rows of `channel`: wake the channel's
    dispatchers when it commits."""
    info = session.info
    channels = info.get(_WRITTEN)
    if channels is None:
        info[_WRITTEN] = {channel}
    else:
        channels.add(channel)


def _key(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def engine_of(session_factory: async_sessionmaker[AsyncSession]) -> AsyncEngine | None:
    bind = session_factory.kw.get("bind")
    return bind if isinstance(bind, AsyncEngine) else None


def register(engine: AsyncEngine, channel: str, wake: Wake) -> Callable[[], None]:
    """Call `wake` whenever a transaction of this process that wrote rows of `channel` to this
    database commits; returns what undoes the registration."""
    wakers = _wakers.setdefault(_key(engine.url), {}).setdefault(channel, [])
    wakers.append(wake)

    def unregister() -> None:
        with contextlib.suppress(ValueError):
            wakers.remove(wake)

    return unregister


def wake_local(url: URL, channels: set[str]) -> None:
    by_channel = _wakers.get(_key(url))
    if not by_channel:
        return
    for channel in channels:
        for wake in list(by_channel.get(channel, ())):
            try:
                wake()
            except Exception:  # a waker must not fail a committed transaction's caller
                log.exception("waking the %s dispatcher failed", channel)


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    channels = session.info.get(_WRITTEN)
    if not channels:
        return
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        return
    connection = session.connection()
    for channel in sorted(channels):
        connection.execute(_NOTIFY, {"name": NOTIFY_CHANNEL, "payload": f"{channel} {PROCESS}"})


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    channels = session.info.pop(_WRITTEN, None)
    if channels:
        wake_local(session.get_bind().engine.url, channels)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_WRITTEN, None)


# --------------------------------------------------------------------------------------------
# PostgreSQL: LISTEN in the dispatchers of other processes
# --------------------------------------------------------------------------------------------


def _payload_channel(payload: str) -> tuple[str, str]:
    channel, _, process = payload.partition(" ")
    return channel, process


class Listener:
    """LISTEN dpo_outbox on a connection of its own (outside the engine's pool) and call `wake`
    for each notification of `channel` from another process; reconnects after `retry` seconds
    when the connection is lost, waking once on every (re)connection (rows may have been
    written meanwhile)."""

    def __init__(
        self, engine: AsyncEngine, channel: str, wake: Wake, *, retry: float = 5.0
    ) -> None:
        self.engine = engine
        self.channel = channel
        self.wake = wake
        self.retry = retry
        self.listening = asyncio.Event()  # set while a connection listens (tests wait for it)
        self.received = 0

    @staticmethod
    def applies(engine: AsyncEngine) -> bool:
        return engine.dialect.name == "postgresql" and engine.dialect.driver == "asyncpg"

    async def _connect(self) -> Any:
        import asyncpg

        _, options = self.engine.dialect.create_connect_args(self.engine.url)
        for name in ("prepared_statement_cache_size", "prepared_statement_name_func"):
            options.pop(name, None)
        return await asyncpg.connect(**options)

    def _notified(self, _connection: Any, _pid: int, _name: str, payload: str) -> None:
        channel, process = _payload_channel(payload)
        if channel == self.channel and process != PROCESS:
            self.received += 1
            self.wake()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            lost = asyncio.Event()
            connection = None
            try:
                connection = await self._connect()
                connection.add_termination_listener(lambda _c, lost=lost: lost.set())
                await connection.add_listener(NOTIFY_CHANNEL, self._notified)
                self.listening.set()
                self.wake()  # what was written while nobody listened
                await _first(stop, lost)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning(
                    "%s outbox: LISTEN %s failed (%s); polling meanwhile",
                    self.channel,
                    NOTIFY_CHANNEL,
                    type(error).__name__,
                )
            finally:
                self.listening.clear()
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(connection.close(), 5)
            if not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.retry)


async def _first(*events: asyncio.Event) -> None:
    waits = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
