"""Migration 0007_poll_markers: the table of stored polling markers comes and goes with the
revision, and a marker written after the upgrade is read back. On SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import create_session_factory
from storage.migrate import downgrade, upgrade
from storage.poll_markers import PollMarkers
from tests import factories

BEFORE = "0006"
BOT_ID = 229229229


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_the_upgrade_adds_poll_markers_and_the_downgrade_drops_it(
    unmigrated_engine: AsyncEngine,
) -> None:
    engine = unmigrated_engine
    await upgrade(engine, BEFORE)
    async with engine.connect() as connection:
        assert "poll_markers" not in await connection.run_sync(_tables)
    await upgrade(engine)
    markers = PollMarkers(create_session_factory(engine), "max", BOT_ID)
    assert await markers.load() is None
    await markers.save(2**40, factories.T0)  # MAX's markers are large numbers
    await markers.save(2**40 + 3, factories.T0)
    assert await markers.load() == 2**40 + 3
    assert await PollMarkers(create_session_factory(engine), "max", BOT_ID + 1).load() is None
    await downgrade(engine, BEFORE)
    async with engine.connect() as connection:
        assert "poll_markers" not in await connection.run_sync(_tables)
    await upgrade(engine)  # and up again
    async with engine.connect() as connection:
        assert "poll_markers" in await connection.run_sync(_tables)
