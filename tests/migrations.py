"""For a migration's own test (tests/integration/test_migration_*.py): an empty database taken to
the revision before the migration, its rows written there, then upgraded; a look at the schema
or the rows on one connection; the names of the tables and of a table's columns."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.migrate import upgrade

T = TypeVar("T")


async def upgrade_from(engine: AsyncEngine, before: str, there: Callable[..., T], *args: Any) -> T:
    """Migrate the empty database to the revision `before`, run `there(connection, *args)` in
    one transaction of that schema (write its rows, or look at them and at the schema), then
    upgrade to the newest revision: what `there` returned."""
    await upgrade(engine, before)
    async with engine.begin() as connection:
        result = await connection.run_sync(there, *args)
    await upgrade(engine)
    return result


async def look(engine: AsyncEngine, at: Callable[..., T], *args: Any) -> T:
    """`at(connection, *args)` on a connection of the database as it is now."""
    async with engine.connect() as connection:
        return await connection.run_sync(at, *args)


def table_names(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def column_names(connection: Connection, table: str) -> set[str]:
    return {column["name"] for column in inspect(connection).get_columns(table)}
