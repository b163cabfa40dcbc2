"""poll_markers: the confirmed long polling marker of each bot, kept across restarts

Revision ID: 0007_poll_markers
Revises: 0006
Create Date: 2027-01-27 10:00:00

MAX's long polling kept its marker only in memory: after a restart the first `GET /updates` went
without one, which dev.max.ru says returns only the last update, so updates that arrived while
the bot was down could be lost. The marker is now written (per messenger and bot) once the
updates before it are recorded handled, and read at start.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_poll_markers"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "poll_markers",
        sa.Column("messenger", sa.String(length=16), nullable=False),
        sa.Column("bot_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("marker", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("messenger", "bot_id", name=op.f("pk_poll_markers")),
    )


def downgrade() -> None:
    op.drop_table("poll_markers")
