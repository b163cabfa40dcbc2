"""storage/sqlite_trip.py: a SQLite statement is one hand-off to aiosqlite's thread, and
behaves as SQLAlchemy's own adapter makes it behave."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import create_engine
from storage.sqlite_trip import OneTripConnection


@pytest.fixture
async def sqlite_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'trip.sqlite3'}")
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE)"))
    yield engine
    await engine.dispose()


@pytest.fixture
def hand_offs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The functions handed to aiosqlite's thread, by name."""
    seen: list[str] = []
    original = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return seen


async def test_every_connection_takes_one_trip_per_statement(
    sqlite_engine: AsyncEngine, hand_offs: list[str]
) -> None:
    async with sqlite_engine.connect() as connection:
        raw = await connection.get_raw_connection()
        assert type(raw.dbapi_connection) is OneTripConnection
        hand_offs.clear()
        rows = (await connection.execute(text("SELECT 1 AS one, 'два' AS two"))).all()
        assert hand_offs == ["_run"]  # SQLAlchemy's adapter: cursor, execute, fetchall, close
    assert [tuple(row) for row in rows] == [(1, "два")]


async def test_rows_counts_and_ids_are_as_the_adapter_reports_them(
    sqlite_engine: AsyncEngine,
) -> None:
    async with sqlite_engine.begin() as connection:
        inserted = await connection.execute(text("INSERT INTO t (name) VALUES ('a'), ('b')"))
        assert inserted.rowcount == 2
        assert inserted.lastrowid == 2
        updated = await connection.execute(text("UPDATE t SET name = name || '!' WHERE id > 0"))
        assert updated.rowcount == 2
        result = await connection.execute(text("SELECT id, name FROM t ORDER BY id"))
        assert list(result.keys()) == ["id", "name"]
        assert [tuple(row) for row in result] == [(1, "a!"), (2, "b!")]
        returned = await connection.execute(text("DELETE FROM t WHERE id = 1 RETURNING name"))
        assert returned.scalar_one() == "a!"
        nothing = await connection.execute(text("SELECT id FROM t WHERE id = 99"))
        assert nothing.all() == []


async def test_errors_are_sqlalchemy_s_and_roll_back(sqlite_engine: AsyncEngine) -> None:
    async with sqlite_engine.begin() as connection:
        await connection.execute(text("INSERT INTO t (name) VALUES ('x')"))

    async def insert_y_then_x_again() -> None:
        async with sqlite_engine.begin() as connection:
            await connection.execute(text("INSERT INTO t (name) VALUES ('y')"))
            await connection.execute(text("INSERT INTO t (name) VALUES ('x')"))

    async def misspelt() -> None:
        async with sqlite_engine.connect() as connection:
            await connection.execute(text("SELEC nonsense"))

    with pytest.raises(IntegrityError):
        await insert_y_then_x_again()
    with pytest.raises(OperationalError):
        await misspelt()
    async with sqlite_engine.connect() as connection:
        names = (await connection.execute(text("SELECT name FROM t ORDER BY name"))).scalars()
        assert list(names) == ["x"]  # 'y' went with its transaction
