"""Migration 0007_poll_markers: the table of stored polling markers comes and goes with the
revision, and a marker written after the upgrade is read back. On SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import create_session_factory
from storage.migrate import downgrade, upgrade
from storage.poll_markers import PollMarkers
from tests import factories
from tests.migrations import look, table_names, upgrade_from

BEFORE = "0006"
BOT_ID = 229229229


async def test_the_upgrade_adds_poll_markers_and_the_downgrade_drops_it(
    unmigrated_engine: AsyncEngine,
) -> None:
    engine = unmigrated_engine
    assert "poll_markers" not in await upgrade_from(engine, BEFORE, table_names)
    markers = PollMarkers(create_session_factory(engine), "max", BOT_ID)
    assert await markers.load() is None
    await markers.save(2**40, factories.T0)  # MAX's markers are large numbers
    await markers.save(2**40 + 3, factories.T0)
    assert await markers.load() == 2**40 + 3
    assert await PollMarkers(create_session_factory(engine), "max", BOT_ID + 1).load() is None
    await downgrade(engine, BEFORE)
    assert "poll_markers" not in await look(engine, table_names)
    await upgrade(engine)  # and up again
    assert "poll_markers" in await look(engine, table_names)
