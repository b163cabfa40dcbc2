"""accounts.muted_at: when the person muted pushes, kept with the mute itself

Revision ID: 0005_account_muted_at
Revises: 0003
Create Date: 2027-01-20 10:00:00

The moment was kept in the conversation state of the chat where «🔕 Выключить уведомления» was
pressed, while the mute is the person's (accounts.muted): unmuting in another messenger gave no
summary, and a logout or revocation of that one chat lost it. Now it is on the account. Muted
accounts get the moment of the upgrade (what changed before it is not summed up: the moment the
chat kept is not read back); the state's key is left to expire with the state.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_account_muted_at"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE on both backends, never a batch copy of accounts on SQLite: dropping the old
# table with foreign keys on would cascade to every row that names an account.


def upgrade() -> None:
    op.add_column("accounts", sa.Column("muted_at", sa.DateTime(timezone=True)))
    accounts = sa.table(
        "accounts", sa.column("muted", sa.Boolean), sa.column("muted_at", sa.DateTime(True))
    )
    op.execute(
        accounts.update()
        .where(accounts.c.muted.is_(True))
        .values(muted_at=sa.func.current_timestamp())
    )


def downgrade() -> None:
    op.drop_column("accounts", "muted_at")
