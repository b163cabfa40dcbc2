"""link security: launch data, the owner's permission to move a binding, overall throttling

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-14 10:00:00

- link_tokens.telegram_name (the display name, which anyone can choose) gives way to
  telegram_username; launched_at is when the mini app that started a bot-first sign-in was
  opened; move_requested_at marks a portal token waiting for the bound owner's permission.
- link_failures gets an index on created_at for the overall throttle.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("link_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("move_requested_at", sa.DateTime(timezone=True)))
        batch_op.add_column(sa.Column("telegram_username", sa.String(length=64)))
        batch_op.add_column(sa.Column("launched_at", sa.DateTime(timezone=True)))
        batch_op.drop_column("telegram_name")
    with op.batch_alter_table("link_failures", schema=None) as batch_op:
        batch_op.create_index("ix_link_failures_time", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("link_failures", schema=None) as batch_op:
        batch_op.drop_index("ix_link_failures_time")
    with op.batch_alter_table("link_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("telegram_name", sa.String(length=255)))
        batch_op.drop_column("launched_at")
        batch_op.drop_column("telegram_username")
        batch_op.drop_column("move_requested_at")
