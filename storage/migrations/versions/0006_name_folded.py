"""accounts.name_folded: the name as search compares it, stored

Revision ID: 0006
Revises: 0005_account_muted_at
Create Date: 2026-12-22 10:00:00

A search by name compared the applicants' names folded at query time: on SQLite through a
Python function SQLite called back for every name (registered on every connection), on
PostgreSQL with lower() and replace(), which under a C locale folds no Cyrillic. The folded
name (storage.models.fold_name: case-folded, «ё» as «е») is now a column written with the name,
so that both compare plain strings.

The upgrade adds the column and fills it from every account's full_name, in batches; the
downgrade drops it. SQLite adds a NOT NULL column only with a default: '' there (every writer
sets the column; storage/models.py), none on PostgreSQL.

On PostgreSQL a trigram index (extension pg_trgm, shipped with PostgreSQL's contrib; trusted
since PostgreSQL 13, so the database's owner may create it) serves a search across every
account. Where the extension cannot be had, the upgrade goes on without the index (a search
then scans the accounts: slower, the same answers) and says so; the downgrade drops the index,
not the extension (something else may use it).
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.exc import DBAPIError

revision: str = "0006"
down_revision: str | None = "0005_account_muted_at"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 5_000
INDEX = "ix_accounts_name_folded"
log = logging.getLogger(f"alembic.{__name__}")


def fold_name(value: str) -> str:
    """storage.models.fold_name as this revision has it (a migration keeps its own copy)."""
    return value.casefold().replace("ё", "е")


def upgrade() -> None:
    op.add_column(
        "accounts",
        sa.Column("name_folded", sa.Text(), nullable=False, server_default=""),
    )
    connection = op.get_bind()
    accounts = sa.table(
        "accounts",
        sa.column("id", sa.BigInteger()),
        sa.column("full_name"),
        sa.column("name_folded"),
    )
    fill = (
        accounts.update()
        .where(accounts.c.id == sa.bindparam("account"))
        .values(name_folded=sa.bindparam("folded"))
    )
    last: int | None = None
    while True:
        query = sa.select(accounts.c.id, accounts.c.full_name).order_by(accounts.c.id).limit(BATCH)
        if last is not None:
            query = query.where(accounts.c.id > last)
        rows = connection.execute(query).all()
        if not rows:
            break
        connection.execute(
            fill, [{"account": id_, "folded": fold_name(name)} for id_, name in rows]
        )
        last = rows[-1][0]
    if connection.dialect.name == "postgresql":
        op.alter_column("accounts", "name_folded", server_default=None)
        if _trigrams(connection):
            op.create_index(
                INDEX,
                "accounts",
                ["name_folded"],
                postgresql_using="gin",
                postgresql_ops={"name_folded": "gin_trgm_ops"},
            )


def _trigrams(connection: sa.Connection) -> bool:
    """pg_trgm installed in this database (created if it is not and may be)."""
    try:
        with connection.begin_nested():
            connection.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
    except DBAPIError as error:
        log.warning(
            "pg_trgm is not available (%s): accounts.name_folded gets no trigram index",
            type(error.orig).__name__,
        )
        return False
    return True


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index(INDEX, "accounts", if_exists=True)
    op.drop_column("accounts", "name_folded")
