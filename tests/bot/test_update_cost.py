"""The statements a director's update costs: each is a round trip and most of an update's time
(bench/updates.py, docs/BENCHMARKS.md), so the hot paths are held to what they need."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tests.director_data import DIRECTOR, seed_applications
from tests.harness import BotHarness

pytestmark = pytest.mark.every_backend  # the statements of an update differ by backend


@pytest.fixture
async def school(seeded: None, session_factory: async_sessionmaker[AsyncSession]) -> None:
    await seed_applications(session_factory)


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements run on the engine inside the block, by their first word; PostgreSQL's
    advisory locks (the import's feed lock, storage/repositories.py) and the NOTIFY that wakes
    other processes' dispatchers (storage/outbox_signal.py) aside, and the update's
    exactly-once bookkeeping (the record that it is handled, which also tells a redelivery), which
    every update costs and which is counted by `bookkeeping` instead; the advisory locks are
    counted by `locks`."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        statement = str(args[2])
        if "pg_advisory" in statement:
            locks.append(statement)
            return
        if "pg_notify" in statement:
            return
        if "processed_updates" in statement:
            bookkeeping.append(statement.split(None, 1)[0].upper())
            return
        seen.append(statement.split(None, 1)[0].upper())

    bookkeeping.clear()
    locks.clear()
    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


bookkeeping: list[str] = []
locks: list[str] = []


@pytest.mark.usefixtures("school")
async def test_a_director_s_screens_cost_one_statement_each_beyond_the_sender(
    harness: BotHarness, engine: AsyncEngine
) -> None:
    menu = await harness.send(DIRECTOR, "/menu")
    with statements(engine) as seen:  # the sender's binding and FSM state, then the page
        listing = await harness.press(DIRECTOR, menu.buttons()[0][0])
    assert seen == ["SELECT", "SELECT"]
    assert bookkeeping == ["INSERT"]  # recorded with the commit (a redelivery finds it there)
    with statements(engine) as seen:  # the next page: the same
        await harness.press(DIRECTOR, "▶")
    assert seen == ["SELECT", "SELECT"]
    row = next(label for row in listing.buttons() for label in row if label.startswith("№"))
    with statements(engine) as seen:  # the sender; the card with its comments' count
        await harness.press(DIRECTOR, row)
    assert seen == ["SELECT", "SELECT"]
    harness.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_an_approval_with_a_comment_reads_the_prompt_s_state_once(
    harness: BotHarness, engine: AsyncEngine
) -> None:
    menu = await harness.send(DIRECTOR, "/menu")
    listing = await harness.press(DIRECTOR, menu.buttons()[0][0])
    row = next(label for row in listing.buttons() for label in row if label.startswith("№"))
    await harness.press(DIRECTOR, row)
    with statements(engine) as seen:  # the sender, the card, the prompt's state in one write
        await harness.press(DIRECTOR, "✅ Одобрить")
    assert seen == ["SELECT", "SELECT", "INSERT"]
    with statements(engine) as seen:
        await harness.send(DIRECTOR, "Согласовано")
    # The prompt's state is read with the sender; the decision: the application, its update,
    # the history row, the recipients and their push; the card's comments; the state, cleared,
    # in one write.
    assert seen == ["SELECT", "SELECT", "UPDATE", "INSERT", "SELECT", "INSERT", "SELECT", "DELETE"]
    # PostgreSQL: the history feed's shared lock, once for the update and the history row.
    expected = 1 if engine.dialect.name == "postgresql" else 0
    assert len(locks) == expected, locks
    harness.assert_no_errors()
