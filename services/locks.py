"""Run a periodic job in one replica at a time: `job_lock`.

    async with job_lock(session_factory, "digest", clock=clock) as acquired:
        if acquired:
            ...  # the job; other replicas skip it meanwhile

`acquired` is False at once (no waiting) when another process holds the lock. The lock excludes
*concurrent* runs only: a job that must run once per period (the daily digest) also records what it
has done (e.g. the date of the last digest) inside the lock and checks it first, since a second
replica may take the lock right after the first has released it.

- PostgreSQL: `pg_try_advisory_xact_lock(key)` in a transaction held open for the job's duration;
  the lock goes with the transaction, so a crashed holder never leaves it behind. The job does its
  own work in its own sessions.
- SQLite: a lease row in `job_leases(name, owner, until)`, taken with one conditional upsert (works
  across processes on the same file), renewed while the job runs and deleted at the end; a crashed
  holder's lease runs out after `ttl`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.clock import Clock, SystemClock
from storage.db import upsert
from storage.models import JobLease

log = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(minutes=2)


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for the job name (Python's hash() differs between processes)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


@asynccontextmanager
async def job_lock(
    session_factory: async_sessionmaker[AsyncSession],
    name: str,
    *,
    clock: Clock | None = None,
    ttl: timedelta = DEFAULT_LEASE,
) -> AsyncIterator[bool]:
    """Try to take the lock of job `name`; yields whether this process got it (see module doc).

    `clock` and `ttl` matter on SQLite only: the lease is valid until now + ttl and is renewed
    every ttl/3 while the job runs.
    """
    async with session_factory() as probe:
        backend = probe.get_bind().dialect.name
    if backend == "postgresql":
        async with _advisory_lock(session_factory, name) as acquired:
            yield acquired
    else:
        lease = Lease(session_factory, name, clock or SystemClock(), ttl)
        async with lease.held() as acquired:
            yield acquired


@asynccontextmanager
async def _advisory_lock(
    session_factory: async_sessionmaker[AsyncSession], name: str
) -> AsyncIterator[bool]:
    async with session_factory() as session, session.begin():
        key = advisory_key(name)
        yield bool(await session.scalar(select(func.pg_try_advisory_xact_lock(key))))


class Lease:
    """A row-based lease on one job name (the SQLite job lock)."""

    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        name: str,
        clock: Clock,
        ttl: timedelta,
    ) -> None:
        self.session_factory = session_factory
        self.name = name
        self.clock = clock
        self.ttl = ttl
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"

    async def acquire(self) -> bool:
        """Take the lease if nobody holds it or the holder's lease has run out."""
        now = self.clock.now()
        async with self.session_factory() as session, session.begin():
            statement = upsert(session, JobLease).values(
                name=self.name, owner=self.owner, until=now + self.ttl
            )
            statement = statement.on_conflict_do_update(
                index_elements=["name"],
                set_={"owner": statement.excluded.owner, "until": statement.excluded.until},
                where=JobLease.until <= now,
            )
            result = await session.execute(statement)
            assert isinstance(result, CursorResult)
            return result.rowcount == 1

    async def renew(self) -> bool:
        """Extend the lease; False if it was lost meanwhile (expired and taken by another)."""
        async with self.session_factory() as session, session.begin():
            result = await session.execute(
                update(JobLease)
                .where(JobLease.name == self.name, JobLease.owner == self.owner)
                .values(until=self.clock.now() + self.ttl)
            )
            assert isinstance(result, CursorResult)
            return result.rowcount == 1

    async def release(self) -> None:
        async with self.session_factory() as session, session.begin():
            await session.execute(
                delete(JobLease).where(JobLease.name == self.name, JobLease.owner == self.owner)
            )

    async def _keep_renewed(self) -> None:
        while True:
            await asyncio.sleep(self.ttl.total_seconds() / 3)
            if not await self.renew():
                log.warning("the lease of job %s was lost while the job ran", self.name)
                return

    @asynccontextmanager
    async def held(self) -> AsyncIterator[bool]:
        if not await self.acquire():
            yield False
            return
        renewal = asyncio.create_task(self._keep_renewed())
        try:
            yield True
        finally:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal
            await self.release()
