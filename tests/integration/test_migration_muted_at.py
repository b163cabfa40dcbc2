"""Migration 0005_account_muted_at with real rows: the moment pushes were muted moves onto the
account; a muted account gets the moment of the upgrade (so unmuting sums up from then), an
unmuted one none; the downgrade drops the column and keeps the mute. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import MetaData, Table, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import create_session_factory
from storage.migrate import downgrade, upgrade
from storage.models import Account
from tests import factories
from tests.migrations import column_names, look, upgrade_from

BEFORE = "0003"  # the schema before accounts.muted_at
MUTED, UNMUTED = 1, 2


def _write_accounts(connection: Connection) -> None:
    metadata = MetaData()
    metadata.reflect(connection)
    accounts: Table = metadata.tables["accounts"]
    for account_id, muted in ((MUTED, True), (UNMUTED, False)):
        connection.execute(
            accounts.insert(),
            {
                "id": account_id,
                "full_name": f"Учётная запись {account_id}",
                "updated_at": factories.T0,
                "muted": muted,
            },
        )


async def test_muted_accounts_get_the_moment_of_the_upgrade_and_the_downgrade_keeps_the_mute(
    unmigrated_engine: AsyncEngine,
) -> None:
    engine = unmigrated_engine
    started = datetime.now(UTC) - timedelta(minutes=1)  # the database's clock may differ a bit
    await upgrade_from(engine, BEFORE, _write_accounts)

    async with create_session_factory(engine)() as session:
        rows = {a.id: a for a in await session.scalars(select(Account).order_by(Account.id))}
    muted_at = rows[MUTED].muted_at
    assert muted_at is not None
    assert muted_at.utcoffset() is not None  # an aware moment, read back on every backend
    assert muted_at >= started  # the upgrade's moment
    assert (rows[MUTED].muted, rows[UNMUTED].muted, rows[UNMUTED].muted_at) == (True, False, None)

    await downgrade(engine, BEFORE)
    assert "muted_at" not in await look(engine, column_names, "accounts")
    async with engine.connect() as connection:
        muted = dict((await connection.exec_driver_sql("SELECT id, muted FROM accounts")).all())
    assert {key: bool(value) for key, value in muted.items()} == {MUTED: True, UNMUTED: False}
    await upgrade(engine)  # and up again
