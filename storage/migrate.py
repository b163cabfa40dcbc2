"""Apply Alembic migrations programmatically (no alembic.ini needed).

Alembic is imported only when there is something to migrate: a database already at the newest
revision (every start of a process after the first, and every replica but the one that
migrated) is recognised by comparing its `alembic_version` with the revisions the files under
migrations/versions/ declare. Alembic and what it loads (its templates' Mako, Pygments, every
migration script) are about 8 MiB of a bot process's memory that would otherwise stay for its
whole life (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
# PostgreSQL advisory lock taken while migrating ("dpo-mig"), so that replicas starting together
# migrate one after another and the later ones find nothing left to do.
MIGRATION_LOCK_KEY = 0x64706F2D6D6967
_DECLARED = re.compile(
    r"^(?P<name>revision|down_revision)\s*(?::[^=]*)?=\s*(?:None|[\"'](?P<value>[^\"']*)[\"'])\s*$",
    re.MULTILINE,
)


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@cache
def head_revision() -> str | None:
    """The newest revision, read from the migration files as they declare it (`revision`,
    `down_revision`); None unless there is exactly one head (Alembic then decides)."""
    revisions: dict[str, str | None] = {}
    for path in (MIGRATIONS / "versions").glob("*.py"):
        declared = {m["name"]: m["value"] for m in _DECLARED.finditer(path.read_text("utf-8"))}
        if "revision" not in declared or declared["revision"] is None:
            return None
        revisions[declared["revision"]] = declared.get("down_revision")
    heads = set(revisions) - {down for down in revisions.values() if down is not None}
    return heads.pop() if len(heads) == 1 else None


def _current(connection: Connection) -> set[str]:
    """The revisions the database is at (none for an empty one)."""
    if not inspect(connection).has_table("alembic_version"):
        return set()
    return {
        str(row[0]) for row in connection.execute(text("SELECT version_num FROM alembic_version"))
    }


def _upgrade(connection: Connection, revision: str) -> None:
    from alembic import command

    command.upgrade(alembic_config(connection), revision)


def _downgrade(connection: Connection, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(connection), revision)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    if revision == "head" and (head := head_revision()) is not None:
        async with engine.connect() as connection:
            if await connection.run_sync(_current) == {head}:
                return  # nothing to do: Alembic is not even imported
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
            )
        await connection.run_sync(_upgrade, revision)


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(_downgrade, revision)
