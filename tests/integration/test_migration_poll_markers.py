"""Migration 0006_poll_markers: the table of stored polling markers comes and goes with the
revision, and a marker written after the upgrade is read back. On SQLite and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import create_engine, create_session_factory
from storage.migrate import downgrade, upgrade
from storage.poll_markers import PollMarkers
from tests import factories
from tests.conftest import BACKENDS, reset_postgres

BEFORE = "0005_account_muted_at"
BOT_ID = 229229229


@pytest.fixture(params=BACKENDS)
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'old.sqlite3'}"
    else:
        url = os.environ["TEST_DATABASE_URL"]
        await reset_postgres(url)
    engine = create_engine(url)
    yield engine
    await engine.dispose()


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_the_upgrade_adds_poll_markers_and_the_downgrade_drops_it(
    engine: AsyncEngine,
) -> None:
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
