"""PostgreSQL connections are not pinged before use (storage/db.py): when the server drops them,
one update fails with the usual «try again» and the next ones work on fresh connections."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import texts
from storage.db import create_engine
from tests.conftest import BACKENDS
from tests.director_data import DIRECTOR, seed_applications
from tests.harness import BotHarness


@pytest.fixture
async def school(seeded: None, session_factory: async_sessionmaker[AsyncSession]) -> None:
    await seed_applications(session_factory)


async def drop_pooled_connection(harness: BotHarness, database_url: str) -> None:
    """What a server restart does to the bot's pooled connection (updates fed one at a time use
    one), done to that connection only."""
    async with harness.session_factory() as session:
        pid = await session.scalar(text("SELECT pg_backend_pid()"))
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            dropped = await connection.scalar(
                text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}
            )
    finally:
        await engine.dispose()
    assert dropped


@pytest.mark.skipif("postgresql" not in BACKENDS, reason="needs PostgreSQL: set TEST_DATABASE_URL")
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite has no server
@pytest.mark.usefixtures("school")
async def test_dropped_connections_cost_one_update_not_more(
    harness: BotHarness, database_url: str
) -> None:
    menu = await harness.send(DIRECTOR, "/menu")
    await drop_pooled_connection(harness, database_url)

    await harness.press(DIRECTOR, menu.buttons()[0][0], menu.message_id)
    answer = harness.api.calls_of("answerCallbackQuery")[-1].params
    assert answer.get("text") == texts.SOMETHING_WENT_WRONG
    assert harness.errors.records  # logged for the operator
    harness.errors.records.clear()

    listing = await harness.press(DIRECTOR, menu.buttons()[0][0], menu.message_id)
    assert any(label.startswith("№") for row in listing.buttons() for label in row)
    harness.assert_no_errors()
