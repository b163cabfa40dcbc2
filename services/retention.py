"""Retention: personal data the bot keeps only while it serves a purpose (docs/privacy.md).

Every hour one process (job lock "retention", services/locks.py) deletes:

* Telegram and webhook outbox rows that were sent, or that failed, longer than the retention
  period ago (setting OUTBOX_RETENTION_DAYS, default 30 days): a sent push keeps which chat
  belongs to which account, and is only needed to look into a delivery complaint for a while.
  Pending rows stay (they are still to be delivered); so do held rows of a chat that blocked the
  bot, until the period has passed since they were written (the user has not come back);
* failed link redemptions older than LINK_FAILURE_RETENTION: they hold a Telegram user id and
  serve throttling, which looks back a minute;
* link tokens that expired longer than services.linking.TOKEN_RETENTION ago, with what a
  bot-first sign-in had noted on them (the Telegram name, the chat).

A binding's own chat data goes with the binding (storage.repositories.LinkRepo.remove). Rows go in
batches, one short transaction each, so that on SQLite no writer waits long for the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, CursorResult, and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.clock import Clock
from services.linking import TOKEN_RETENTION
from services.locks import job_lock
from services.periodic import run_periodically
from storage.models import LinkFailure, LinkToken, OutboxMessage

log = logging.getLogger(__name__)

JOB = "retention"
INTERVAL = 3600.0  # seconds between two runs
BATCH = 1000  # rows deleted per transaction
LINK_FAILURE_RETENTION = timedelta(hours=1)


@dataclass(frozen=True)
class Pruned:
    """How many rows one run deleted."""

    outbox: int = 0
    link_failures: int = 0
    link_tokens: int = 0


def _outbox_done_before(cutoff: datetime) -> ColumnElement[bool]:
    """Outbox rows whose delivery ended (sent or failed) before `cutoff`, and rows held for a
    blocked chat since before it. A failed row's last attempt was due at its `available_at`."""
    return or_(
        and_(OutboxMessage.state == "sent", OutboxMessage.sent_at < cutoff),
        and_(OutboxMessage.state == "failed", OutboxMessage.available_at < cutoff),
        and_(OutboxMessage.state == "held", OutboxMessage.created_at < cutoff),
    )


async def _delete_in_batches(
    session_factory: async_sessionmaker[AsyncSession],
    model: Any,
    condition: ColumnElement[bool],
    batch: int = BATCH,
) -> int:
    deleted = 0
    while True:
        async with session_factory() as session, session.begin():
            chosen = select(model.id).where(condition).limit(batch).scalar_subquery()
            result = await session.execute(delete(model).where(model.id.in_(chosen)))
        assert isinstance(result, CursorResult)
        deleted += result.rowcount
        if result.rowcount < batch:
            return deleted


async def prune(
    session_factory: async_sessionmaker[AsyncSession],
    now: datetime,
    outbox_retention: timedelta,
    *,
    batch: int = BATCH,
) -> Pruned:
    """Delete what has outlived its use at `now` (see the module's docstring)."""
    return Pruned(
        outbox=await _delete_in_batches(
            session_factory, OutboxMessage, _outbox_done_before(now - outbox_retention), batch
        ),
        link_failures=await _delete_in_batches(
            session_factory,
            LinkFailure,
            LinkFailure.created_at < now - LINK_FAILURE_RETENTION,
            batch,
        ),
        link_tokens=await _delete_in_batches(
            session_factory, LinkToken, LinkToken.expires_at < now - TOKEN_RETENTION, batch
        ),
    )


async def run_retention(
    session_factory: async_sessionmaker[AsyncSession], clock: Clock, outbox_retention: timedelta
) -> Pruned | None:
    """One run under the job lock; None when another process is running it right now."""
    async with job_lock(session_factory, JOB, clock=clock) as acquired:
        if not acquired:
            return None
        pruned = await prune(session_factory, clock.now(), outbox_retention)
    if pruned != Pruned():
        log.info(
            "retention: deleted %s outbox rows, %s link failures, %s link tokens",
            pruned.outbox,
            pruned.link_failures,
            pruned.link_tokens,
        )
    return pruned


async def retention_loop(
    session_factory: async_sessionmaker[AsyncSession],
    clock: Clock,
    outbox_retention: timedelta,
    stop: asyncio.Event,
    *,
    interval: float = INTERVAL,
) -> None:
    """Run at once, then every `interval` seconds, until `stop` is set."""

    async def run() -> None:
        await run_retention(session_factory, clock, outbox_retention)

    await run_periodically(run, stop, interval=interval, what="retention run")


@dataclass
class Retention:
    """The retention loop as a task of a running process; `stop()` ends it."""

    task: asyncio.Task[None]
    stopping: asyncio.Event

    @classmethod
    def start(
        cls,
        session_factory: async_sessionmaker[AsyncSession],
        clock: Clock,
        outbox_retention: timedelta,
    ) -> Retention:
        stopping = asyncio.Event()
        task = asyncio.create_task(
            retention_loop(session_factory, clock, outbox_retention, stopping), name=JOB
        )
        return cls(task, stopping)

    async def stop(self) -> None:
        self.stopping.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
