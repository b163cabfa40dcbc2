"""Migrations: upgrade, downgrade, upgrade on an empty database; the result matches the models."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from storage.db import create_engine
from storage.migrate import downgrade, upgrade
from storage.models import Base
from tests.conftest import BACKENDS, reset_postgres


def _diff(connection: Connection) -> list[object]:
    dialect = connection.dialect.name

    def for_this_dialect(item: object, *_: object) -> bool:
        """What the models create on this backend: Alembic does not read `ddl_if` (the
        trigram index of accounts' folded names is PostgreSQL's only)."""
        only = getattr(item, "_ddl_if", None)
        return only is None or only.dialect in (None, dialect)

    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_object": for_this_dialect}
    )
    return list(compare_metadata(context, Base.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) - {"alembic_version"}


@pytest.mark.parametrize("backend", BACKENDS)
async def test_upgrade_downgrade_upgrade_matches_models(backend: str, tmp_path: Path) -> None:
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'migrations.sqlite3'}"
    else:
        url = os.environ["TEST_DATABASE_URL"]
        await reset_postgres(url)
    engine = create_engine(url)
    try:
        await upgrade(engine)
        async with engine.connect() as connection:
            assert await connection.run_sync(_tables) == set(Base.metadata.tables)
        await downgrade(engine, "base")
        async with engine.connect() as connection:
            assert await connection.run_sync(_tables) == set()
        await upgrade(engine)
        async with engine.connect() as connection:
            assert await connection.run_sync(_diff) == []
    finally:
        await engine.dispose()


@pytest.mark.skipif("postgresql" not in BACKENDS, reason="needs PostgreSQL: set TEST_DATABASE_URL")
async def test_replicas_starting_together_migrate_one_after_another() -> None:
    url = os.environ["TEST_DATABASE_URL"]
    await reset_postgres(url)
    engines = [create_engine(url) for _ in range(3)]
    try:
        await asyncio.gather(*(upgrade(engine) for engine in engines))
        async with engines[0].connect() as connection:
            assert await connection.run_sync(_diff) == []
    finally:
        for engine in engines:
            await engine.dispose()
