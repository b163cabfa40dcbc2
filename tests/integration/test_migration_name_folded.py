"""Migration 0006 with real rows: accounts written by the schema before it get their stored folded
name (every batch of the backfill), a search finds them by it, and the downgrade gives that
schema back with its rows. On SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import MetaData, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from services.domain import Actor, Role
from services.queries import Search, list_rows
from storage.db import create_session_factory
from storage.migrate import downgrade, upgrade
from storage.models import Account
from storage.repositories import Repositories
from tests import factories
from tests.migrations import column_names, look, upgrade_from

T0 = factories.T0
BEFORE = "0005_account_muted_at"  # the revision migration 0006 follows
# More accounts than one batch of the backfill (5,000), so that every batch is seen.
NAMES = {
    1: "Петров Пётр Петрович",
    2: "ЁЛКИНА Алёна Юрьевна",
    3: "Straße Анна",
    **{id_: f"Житель{id_} Фёдор" for id_ in range(4, 5_104)},
}
STAFF = Actor(1, "Петров Пётр Петрович", Role.STAFF, frozenset({Role.STAFF}), None)


def _write_before(connection: Connection) -> None:
    """Accounts and an application of each of the first three, as the schema before keeps them."""
    metadata = MetaData()
    metadata.reflect(connection)
    tables = metadata.tables
    connection.execute(
        tables["organizations"].insert(),
        {"id": 10, "name": "МАОУ «СОШ № 10»", "municipality": None, "updated_at": T0},
    )
    connection.execute(
        tables["accounts"].insert(),
        [
            {"id": id_, "full_name": name, "organization_id": 10, "updated_at": T0}
            for id_, name in NAMES.items()
        ],
    )
    connection.execute(
        tables["applications"].insert(),
        [
            {
                "number": 500 + id_,
                "applicant_id": id_,
                "organization_id": 10,
                "status": "new",
                "version": 1,
                "created_at": T0,
                "updated_at": T0,
            }
            for id_ in (1, 2, 3)
        ],
    )


def _names(connection: Connection) -> dict[int, str]:
    metadata = MetaData()
    metadata.reflect(connection, only=["accounts"])
    accounts = metadata.tables["accounts"]
    rows = connection.execute(select(accounts.c.id, accounts.c.full_name))
    return {int(id_): name for id_, name in rows}


async def test_the_backfill_folds_every_name_and_the_downgrade_keeps_the_rows(
    unmigrated_engine: AsyncEngine,
) -> None:
    engine = unmigrated_engine
    await upgrade_from(engine, BEFORE, _write_before)

    session_factory = create_session_factory(engine)
    async with session_factory() as session:
        folded = dict(
            (await session.execute(select(Account.id, Account.name_folded))).tuples().all()
        )
        assert folded[1] == "петров петр петрович"
        assert folded[2] == "елкина алена юрьевна"
        assert folded[3] == "strasse анна"
        assert folded == {id_: name.casefold().replace("ё", "е") for id_, name in NAMES.items()}
        repo = Repositories(session)
        for text, numbers in [("Алена", [502]), ("пЁтр", [501]), ("STRASSE", [503])]:
            page = await list_rows(repo, STAFF, status=None, search=Search(text))
            assert [row.number for row in page.items] == numbers, text

    await downgrade(engine, BEFORE)
    assert "name_folded" not in await look(engine, column_names, "accounts")
    assert await look(engine, _names) == NAMES

    await upgrade(engine)
    async with session_factory() as session:
        assert await session.scalar(select(Account.name_folded).where(Account.id == 2)) == (
            "елкина алена юрьевна"
        )
