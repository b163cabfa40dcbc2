"""The daily digests (docs/notifications.md): the directors' of applications «Не обработана»,
and staff's of director-approved applications waiting for «Включить в группу» (issue 15).

At the configured local time each director who has unprocessed applications in their
organisation, and has not opted out or muted pushes, gets one digest push through the outbox.
The day is recorded in `digest_runs` in the same transaction as the pushes, so a restart, or
several dispatchers at once, never send a day's digest twice; the job lock (services/locks.py)
keeps dispatchers from even trying at the same moment.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.clock import Clock
from services.locks import job_lock
from services.notifications import NotificationKind, enqueue_pushes
from services.periodic import run_periodically
from storage.models import DigestRun
from storage.repositories import Repositories

log = logging.getLogger(__name__)

# A digest missed at its time (the service was down) still goes out this long afterwards;
# later than that it would arrive in the middle of the working day and is skipped.
CATCH_UP = timedelta(hours=3)
CHECK_INTERVAL = 30.0
JOB = "digest"


def due_day(now: datetime, zone: ZoneInfo, at: time, catch_up: timedelta = CATCH_UP) -> date | None:
    """The local day whose digest is due at `now`, or None outside the sending window."""
    local = now.astimezone(zone)
    for day in (local.date(), local.date() - timedelta(days=1)):
        scheduled = datetime.combine(day, at, tzinfo=zone)
        if scheduled <= local < scheduled + catch_up:
            return day
    return None


async def enqueue_digest(repo: Repositories, day: date, now: datetime) -> int | None:
    """Record the day and write its digest pushes; None if the day was already done.

    Call in a fresh transaction and commit it; a concurrent run for the same day makes the
    commit fail on the primary key (IntegrityError), which `run_digest_if_due` absorbs.
    """
    if await repo.session.get(DigestRun, day) is not None:
        return None
    run = DigestRun(day=day, created_at=now, recipients=0)
    repo.session.add(run)
    await repo.session.flush([run])  # claim the day first: a concurrent run stops here
    recipients = await repo.links.digest_recipients()
    run.recipients = await enqueue_pushes(
        repo,
        kind=NotificationKind.DIGEST,
        account_ids=recipients,
        application_number=None,
        event_id=None,
        now=now,
        payload={"day": day.isoformat()},
    )
    run.recipients += await enqueue_pushes(
        repo,
        kind=NotificationKind.STAFF_DIGEST,
        account_ids=await repo.links.staff_digest_recipients(),
        application_number=None,
        event_id=None,
        now=now,
        payload={"day": day.isoformat()},
    )
    return run.recipients


async def run_digest_if_due(
    session_factory: async_sessionmaker[AsyncSession], clock: Clock, zone: ZoneInfo, at: time
) -> int | None:
    """Write today's digest if it is due and not yet written; returns the pushes written."""
    now = clock.now()
    day = due_day(now, zone, at)
    if day is None:
        return None
    async with job_lock(session_factory, JOB, clock=clock) as acquired:
        if not acquired:
            return None  # another dispatcher is at it right now
        async with session_factory() as session:
            try:
                written = await enqueue_digest(Repositories(session), day, now)
                await session.commit()
            except IntegrityError:  # written meanwhile by a dispatcher that held the lock before
                await session.rollback()
                return None
    if written is not None:
        log.info("digest of %s: %s pushes written", day.isoformat(), written)
    return written


async def digest_loop(
    session_factory: async_sessionmaker[AsyncSession],
    clock: Clock,
    zone: ZoneInfo,
    at: time,
    stop: asyncio.Event,
    *,
    interval: float = CHECK_INTERVAL,
    on_written: Callable[[], None] | None = None,
) -> None:
    """Check every `interval` seconds whether a digest is due, until `stop` is set."""

    async def check() -> int | None:
        return await run_digest_if_due(session_factory, clock, zone, at)

    await run_periodically(
        check, stop, interval=interval, what="digest check", on_written=on_written
    )
