"""A bot process's pruning of handled update ids stopped while a run waits for the database:
the run ends (its rows gone, its connection returned), nothing is cut off inside its
transaction. Cancelled there, the run left its connection to be closed by a cancelled task,
and SQLAlchemy logged the failed close as an error with a traceback."""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.conversation.receipts import HANDLED_UPDATES_KEPT, forget_handled_updates_periodically
from bot.process.stopping import within
from services.clock import ManualClock
from storage.models import ProcessedUpdate
from storage.updates import UpdateKey, record_update

OLD = UpdateKey("telegram", "1")


async def test_a_stop_lets_the_run_in_progress_end(
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert await record_update(session_factory, OLD, clock.now())
    clock.advance(seconds=HANDLED_UPDATES_KEPT.total_seconds() + 1)
    stop = asyncio.Event()
    caplog.set_level(logging.INFO)
    async with session_factory() as blocker:
        # Another writer holds the row (on SQLite: the database's write lock) the run deletes.
        await blocker.execute(
            update(ProcessedUpdate)
            .where(ProcessedUpdate.key == OLD.key)
            .values(received_at=ProcessedUpdate.received_at)
        )
        pruning = asyncio.create_task(
            forget_handled_updates_periodically(session_factory, clock, stop)
        )
        await asyncio.sleep(0.5)
        assert not pruning.done()  # waiting for the writer
        stop.set()
        stopped = asyncio.create_task(within("the pruning", pruning))
        await asyncio.sleep(0.3)
        assert not stopped.done()  # the stop waits for the run
        await blocker.commit()
    await asyncio.wait_for(stopped, 10)
    assert not pruning.cancelled()
    async with session_factory() as session:
        assert (await session.scalars(select(ProcessedUpdate.key))).all() == []
    assert "forgot 1 handled update ids" in caplog.text
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]
