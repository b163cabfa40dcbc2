"""Periodic jobs run once across replicas: job_lock on SQLite (lease rows) and PostgreSQL
(advisory locks), between connections of one process and between processes."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.clock import ManualClock
from services.locks import Lease, advisory_key, job_lock
from storage.db import create_engine, create_session_factory
from storage.migrate import upgrade
from storage.models import JobLease

ROOT = Path(__file__).resolve().parents[2]

HOLDER = """
import asyncio, sys
from services.locks import job_lock
from storage.db import create_engine, create_session_factory

async def main(url: str) -> None:
    engine = create_engine(url)
    async with job_lock(create_session_factory(engine), "digest") as acquired:
        print("acquired" if acquired else "busy", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    await engine.dispose()

asyncio.run(main(sys.argv[1]))
"""


@pytest.fixture
async def other_factory(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A second engine on the same database: another replica's connections."""
    engine = create_engine(database_url)
    yield create_session_factory(engine)
    await engine.dispose()


async def test_of_two_concurrent_contenders_exactly_one_acquires(
    session_factory: async_sessionmaker[AsyncSession],
    other_factory: async_sessionmaker[AsyncSession],
) -> None:
    start = asyncio.Event()
    both_tried = asyncio.Barrier(2)
    ran: list[str] = []

    async def contender(name: str, factory: async_sessionmaker[AsyncSession]) -> bool:
        await start.wait()
        async with job_lock(factory, "digest") as acquired:
            if acquired:
                ran.append(name)
            await both_tried.wait()  # the winner holds the lock until the loser has tried
            return acquired

    tasks = [
        asyncio.create_task(contender("first", session_factory)),
        asyncio.create_task(contender("second", other_factory)),
    ]
    await asyncio.sleep(0)
    start.set()
    results = await asyncio.gather(*tasks)
    assert sorted(results) == [False, True]
    assert len(ran) == 1


async def test_the_lock_is_free_again_after_the_job_and_other_jobs_are_not_blocked(
    session_factory: async_sessionmaker[AsyncSession],
    other_factory: async_sessionmaker[AsyncSession],
) -> None:
    async with job_lock(session_factory, "digest") as acquired:
        assert acquired
        async with job_lock(other_factory, "prune-updates") as other_job:
            assert other_job
        async with job_lock(other_factory, "digest") as same_job:
            assert not same_job
    async with job_lock(other_factory, "digest") as acquired:
        assert acquired


async def test_a_failing_job_releases_the_lock(
    session_factory: async_sessionmaker[AsyncSession],
    other_factory: async_sessionmaker[AsyncSession],
) -> None:
    async def failing_job() -> None:
        async with job_lock(session_factory, "digest") as acquired:
            assert acquired
            raise RuntimeError("the job failed")

    with pytest.raises(RuntimeError, match="the job failed"):
        await failing_job()
    async with job_lock(other_factory, "digest") as acquired:
        assert acquired


async def test_another_process_holding_the_lock_keeps_this_one_out(database_url: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLDER,
        database_url,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    engine = create_engine(database_url)
    try:
        line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
        assert line.decode().strip() == "acquired"
        factory = create_session_factory(engine)
        async with job_lock(factory, "digest") as acquired:
            assert not acquired
        process.stdin.write(b"done\n")
        await process.stdin.drain()
        assert await asyncio.wait_for(process.wait(), timeout=60) == 0
        async with job_lock(factory, "digest") as acquired:
            assert acquired
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await engine.dispose()


def test_advisory_keys_are_stable_signed_64_bit_numbers() -> None:
    assert advisory_key("digest") == advisory_key("digest")
    assert advisory_key("digest") != advisory_key("prune-updates")
    assert -(2**63) <= advisory_key("digest") < 2**63
    # Fixed across processes and releases (Python's own hash() is salted per process).
    assert advisory_key("digest") == 861441562161401950


# -- the SQLite lease ----------------------------------------------------------------------------


@pytest.fixture
async def sqlite_factory(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}")
    await upgrade(engine)
    yield create_session_factory(engine)
    await engine.dispose()


async def test_a_crashed_holders_lease_is_taken_over_once_it_has_run_out(
    sqlite_factory: async_sessionmaker[AsyncSession],
) -> None:
    clock = ManualClock()
    crashed = Lease(sqlite_factory, "digest", clock, timedelta(minutes=2))
    assert await crashed.acquire()  # and never released: the process died
    successor = Lease(sqlite_factory, "digest", clock, timedelta(minutes=2))
    clock.advance(minutes=1)
    assert not await successor.acquire()
    clock.advance(minutes=1, seconds=1)
    assert await successor.acquire()
    async with sqlite_factory() as session:
        lease = await session.scalar(select(JobLease))
    assert lease is not None
    assert (lease.owner, lease.until) == (successor.owner, clock.now() + timedelta(minutes=2))
    assert not await crashed.renew()  # the old holder learns it has lost the lease


async def test_a_running_job_renews_its_lease(
    sqlite_factory: async_sessionmaker[AsyncSession],
) -> None:
    clock = ManualClock()
    holder = Lease(sqlite_factory, "digest", clock, timedelta(minutes=2))
    assert await holder.acquire()
    clock.advance(minutes=1, seconds=30)
    assert await holder.renew()
    clock.advance(minutes=1)  # past the first term, within the renewed one
    assert not await Lease(sqlite_factory, "digest", clock, timedelta(minutes=2)).acquire()
    await holder.release()
    assert await Lease(sqlite_factory, "digest", clock, timedelta(minutes=2)).acquire()
