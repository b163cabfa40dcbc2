"""Storage set-up: SQLite pragmas, aware UTC times on every backend, constraints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.db import create_engine
from storage.models import Organization
from tests import factories


async def test_sqlite_runs_in_wal_with_foreign_keys_and_a_busy_timeout(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'new' / 'folder' / 'db.sqlite3'}")
    try:
        async with engine.connect() as connection:
            assert (await connection.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            assert (await connection.execute(text("PRAGMA busy_timeout"))).scalar() >= 5000
    finally:
        await engine.dispose()


async def test_times_come_back_aware_utc_and_naive_ones_are_refused(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    yekaterinburg = timezone(timedelta(hours=5))
    async with session_factory() as session:
        session.add(
            Organization(
                id=1, name="Школа", updated_at=datetime(2026, 9, 1, 14, 0, tzinfo=yekaterinburg)
            )
        )
        await session.commit()
    async with session_factory() as session:
        organization = await session.get(Organization, 1)
        assert organization is not None
        assert organization.updated_at == datetime(2026, 9, 1, 9, 0, tzinfo=UTC)
        assert organization.updated_at.tzinfo is not None
        session.add(Organization(id=2, name="Школа 2", updated_at=datetime(2026, 9, 1)))
        with pytest.raises(StatementError, match="naive datetime"):
            await session.commit()


async def test_foreign_keys_and_status_check_are_enforced(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    async with session_factory() as session:
        session.add(factories.application(1, applicant_id=999, organization_id=999))
        with pytest.raises(IntegrityError):
            await session.commit()
    async with session_factory() as session:
        await factories.seed_school(session)
        session.add(factories.application(2, applicant_id=3, organization_id=10, status="weird"))
        with pytest.raises(IntegrityError):
            await session.commit()
