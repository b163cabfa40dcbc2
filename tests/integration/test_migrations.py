"""Migrations: upgrade, downgrade, upgrade on an empty database; the result matches the models;
a process finding its database at the newest revision leaves Alembic unloaded."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from storage.db import create_engine
from storage.migrate import alembic_config, downgrade, head_revision, upgrade
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


def test_the_head_read_from_the_files_is_alembics() -> None:
    from alembic.script import ScriptDirectory

    assert head_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()


UPGRADE_AND_TELL = """
import asyncio, sys
from storage.db import create_engine
from storage.migrate import upgrade
asyncio.run(upgrade(create_engine(sys.argv[1])))
print("alembic" in sys.modules)
"""


def _upgrade_in_a_process(url: str) -> str:
    """`upgrade` in a fresh interpreter: whether it imported Alembic."""
    done = subprocess.run(
        [sys.executable, "-c", UPGRADE_AND_TELL, url],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    return done.stdout.strip()


async def test_a_process_finding_the_database_at_head_does_not_load_alembic(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}"
    assert await asyncio.to_thread(_upgrade_in_a_process, url) == "True"  # migrated
    assert await asyncio.to_thread(_upgrade_in_a_process, url) == "False"  # at head
    engine = create_engine(url)
    try:
        await downgrade(engine, "0003")
    finally:
        await engine.dispose()
    assert await asyncio.to_thread(_upgrade_in_a_process, url) == "True"  # behind: migrated
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_diff) == []
    finally:
        await engine.dispose()
