"""bindings per messenger: what belongs to the person moves to the account

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-20 10:00:00

- telegram_links gives way to bindings (account, messenger, user id, chat, blocked, linked_at;
  unique per messenger user and per account and messenger); the active role, the consent (time
  and version), mute and digest move to accounts, with push_to (NULL: the messenger bound last).
- link_tokens and link_failures name a messenger user: (messenger, user_id), username.
- outbox: the channel names the messenger ('telegram' | 'max' | 'webhook'); message_id is a
  string (MAX's ids are).
- fsm_states and processed_updates are keyed by the messenger too; an update's key is a string
  (MAX updates have no update_id: the event's own id is the key).
- application_events.source may be 'max'.

Existing rows are all Telegram's and keep working. The downgrade gives back the old schema with
the Telegram data; what only MAX had (its bindings, pushes, states, updates) has no place there
and goes, and history rows made in MAX keep their source as 'telegram' (the old schema knows no
other messenger).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ROLES = "'director', 'listener', 'staff'"


def _execute(statement: str) -> None:
    op.get_bind().execute(sa.text(statement))


def _set_aside(table: str, suffix: str) -> None:
    """Rename a table whose rows are copied into its new shape; on PostgreSQL its primary key
    too (constraint names are the schema's: the new table's is the same)."""
    op.rename_table(table, f"{table}_{suffix}")
    if op.get_bind().dialect.name == "postgresql":
        _execute(
            f"ALTER TABLE {table}_{suffix} RENAME CONSTRAINT pk_{table} TO pk_{table}_{suffix}"
        )


ACCOUNT_COLUMNS = (
    "active_role",
    "consent_at",
    "consent_version",
    "muted",
    "digest_enabled",
    "push_to",
)
ACCOUNT_CHECKS = {
    "active_role": f"active_role IN ({ROLES})",
    "push_to": "push_to IN ('telegram', 'max', 'both')",
}


def _add_account_columns() -> None:
    """What belongs to the person, on accounts. Plain ALTER TABLE ADD COLUMN on both backends:
    a batch copy of accounts on SQLite would drop the old table with foreign keys on, which
    cascades to (or is refused by) every row that names an account. SQLite takes a named
    CHECK only as part of the column."""
    columns = [
        sa.Column("active_role", sa.String(length=16), nullable=True),
        sa.Column("consent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consent_version", sa.String(length=32), nullable=True),
        sa.Column("muted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("digest_enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("push_to", sa.String(length=16), nullable=True),
    ]
    sqlite = op.get_bind().dialect.name == "sqlite"
    for column in columns:
        check = ACCOUNT_CHECKS.get(column.name)
        if sqlite and check is not None:
            kind = column.type.compile(dialect=op.get_bind().dialect)
            _execute(
                f"ALTER TABLE accounts ADD COLUMN {column.name} {kind} "
                f"CONSTRAINT ck_accounts_{column.name} CHECK ({check})"
            )
        else:
            op.add_column("accounts", column)
    if not sqlite:
        for name, check in ACCOUNT_CHECKS.items():
            op.create_check_constraint(op.f(f"ck_accounts_{name}"), "accounts", sa.text(check))


def upgrade() -> None:
    _add_account_columns()

    op.create_table(
        "bindings",
        sa.Column("id", ID, nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("messenger", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("blocked", sa.Boolean(), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("messenger IN ('telegram', 'max')", name=op.f("ck_bindings_messenger")),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_bindings_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bindings")),
        sa.UniqueConstraint("account_id", "messenger", name="uq_bindings_account_messenger"),
        sa.UniqueConstraint("messenger", "user_id", name="uq_bindings_messenger_user"),
    )
    _execute(
        "INSERT INTO bindings (id, account_id, messenger, user_id, chat_id, blocked, linked_at) "
        "SELECT id, account_id, 'telegram', telegram_user_id, chat_id, blocked, linked_at "
        "FROM telegram_links"
    )
    for column in ("active_role", "consent_at", "consent_version", "muted", "digest_enabled"):
        _execute(
            f"UPDATE accounts SET {column} = (SELECT telegram_links.{column} FROM telegram_links "
            "WHERE telegram_links.account_id = accounts.id) "
            "WHERE id IN (SELECT account_id FROM telegram_links)"
        )
    if op.get_bind().dialect.name == "postgresql":  # ids copied: the sequence goes on after them
        _execute(
            "SELECT setval(pg_get_serial_sequence('bindings', 'id'), "
            "COALESCE((SELECT max(id) FROM bindings), 0) + 1, false)"
        )
    op.drop_table("telegram_links")

    with op.batch_alter_table("link_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("messenger", sa.String(length=16), nullable=True))
        batch_op.alter_column("telegram_user_id", new_column_name="user_id")
        batch_op.alter_column("telegram_username", new_column_name="username")
    _execute("UPDATE link_tokens SET messenger = 'telegram' WHERE user_id IS NOT NULL")

    with op.batch_alter_table("link_failures", schema=None) as batch_op:
        batch_op.drop_index("ix_link_failures_user_time")
        batch_op.add_column(
            sa.Column("messenger", sa.String(length=16), server_default="telegram", nullable=False)
        )
        batch_op.alter_column("telegram_user_id", new_column_name="user_id")
    with op.batch_alter_table("link_failures", schema=None) as batch_op:
        batch_op.alter_column("messenger", server_default=None)
        batch_op.create_index(
            "ix_link_failures_user_time", ["messenger", "user_id", "created_at"], unique=False
        )

    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("message_id", sa.String(length=64), nullable=True))
        batch_op.drop_constraint(op.f("ck_outbox_channel"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_outbox_channel"), sa.text("channel IN ('telegram', 'max', 'webhook')")
        )
    _execute(
        "UPDATE outbox SET message_id = CAST(telegram_message_id AS VARCHAR(64)) "
        "WHERE telegram_message_id IS NOT NULL"
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("telegram_message_id")

    with op.batch_alter_table("application_events", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_application_events_source"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_application_events_source"),
            sa.text("source IN ('telegram', 'max', 'api', 'cli')"),
        )

    _set_aside("fsm_states", "0002")
    _fsm_states("messenger")
    _execute(
        "INSERT INTO fsm_states (messenger, bot_id, chat_id, user_id, thread_id, "
        "business_connection_id, destiny, state, data) SELECT 'telegram', bot_id, chat_id, "
        "user_id, thread_id, business_connection_id, destiny, state, data FROM fsm_states_0002"
    )
    op.drop_table("fsm_states_0002")

    with op.batch_alter_table("processed_updates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_processed_updates_received_at"))
    _set_aside("processed_updates", "0002")
    op.create_table(
        "processed_updates",
        sa.Column("messenger", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("messenger", "key", name=op.f("pk_processed_updates")),
    )
    _execute(
        "INSERT INTO processed_updates (messenger, key, received_at) "
        "SELECT 'telegram', CAST(update_id AS VARCHAR(128)), received_at "
        "FROM processed_updates_0002"
    )
    op.drop_table("processed_updates_0002")
    with op.batch_alter_table("processed_updates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_processed_updates_received_at"), ["received_at"], unique=False
        )


def _fsm_states(*first: str) -> None:
    """fsm_states, with the messenger as the first part of its key in 0003."""
    columns = [sa.Column(name, sa.String(length=16), nullable=False) for name in first] + [
        sa.Column("bot_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("chat_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("user_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("thread_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("business_connection_id", sa.String(length=128), nullable=False),
        sa.Column("destiny", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=255), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
    ]
    key = [*first, "bot_id", "chat_id", "user_id", "thread_id", "business_connection_id"]
    op.create_table(
        "fsm_states",
        *columns,
        sa.PrimaryKeyConstraint(*key, "destiny", name=op.f("pk_fsm_states")),
    )


def downgrade() -> None:
    with op.batch_alter_table("processed_updates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_processed_updates_received_at"))
    _set_aside("processed_updates", "0003")
    op.create_table(
        "processed_updates",
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("update_id", name=op.f("pk_processed_updates")),
    )
    _execute(
        "INSERT INTO processed_updates (update_id, received_at) "
        "SELECT CAST(key AS BIGINT), received_at FROM processed_updates_0003 "
        "WHERE messenger = 'telegram'"
    )
    op.drop_table("processed_updates_0003")
    with op.batch_alter_table("processed_updates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_processed_updates_received_at"), ["received_at"], unique=False
        )

    _set_aside("fsm_states", "0003")
    _fsm_states()
    _execute(
        "INSERT INTO fsm_states (bot_id, chat_id, user_id, thread_id, business_connection_id, "
        "destiny, state, data) SELECT bot_id, chat_id, user_id, thread_id, "
        "business_connection_id, destiny, state, data FROM fsm_states_0003 "
        "WHERE messenger = 'telegram'"
    )
    op.drop_table("fsm_states_0003")

    _execute("UPDATE application_events SET source = 'telegram' WHERE source = 'max'")
    with op.batch_alter_table("application_events", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_application_events_source"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_application_events_source"), sa.text("source IN ('telegram', 'api', 'cli')")
        )

    _execute("DELETE FROM outbox WHERE channel = 'max'")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("telegram_message_id", sa.BigInteger(), nullable=True))
    _execute(
        "UPDATE outbox SET telegram_message_id = CAST(message_id AS BIGINT) "
        "WHERE message_id IS NOT NULL"
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("message_id")
        batch_op.drop_constraint(op.f("ck_outbox_channel"), type_="check")
        batch_op.create_check_constraint(
            op.f("ck_outbox_channel"), sa.text("channel IN ('telegram', 'webhook')")
        )

    _execute("DELETE FROM link_failures WHERE messenger <> 'telegram'")
    with op.batch_alter_table("link_failures", schema=None) as batch_op:
        batch_op.drop_index("ix_link_failures_user_time")
        batch_op.drop_column("messenger")
        batch_op.alter_column("user_id", new_column_name="telegram_user_id")
    with op.batch_alter_table("link_failures", schema=None) as batch_op:
        batch_op.create_index(
            "ix_link_failures_user_time", ["telegram_user_id", "created_at"], unique=False
        )

    # A bot-first token of a MAX user, or a portal token offered to one, cannot name them.
    _execute("DELETE FROM link_tokens WHERE messenger = 'max' AND kind = 'bot'")
    _execute(
        "UPDATE link_tokens SET user_id = NULL, chat_id = NULL, username = NULL, "
        "move_requested_at = NULL WHERE messenger = 'max'"
    )
    with op.batch_alter_table("link_tokens", schema=None) as batch_op:
        batch_op.drop_column("messenger")
        batch_op.alter_column("user_id", new_column_name="telegram_user_id")
        batch_op.alter_column("username", new_column_name="telegram_username")

    op.create_table(
        "telegram_links",
        sa.Column("id", ID, nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("active_role", sa.String(length=16), nullable=False),
        sa.Column("consent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("consent_version", sa.String(length=32), nullable=True),
        sa.Column("muted", sa.Boolean(), nullable=False),
        sa.Column("digest_enabled", sa.Boolean(), nullable=False),
        sa.Column("blocked", sa.Boolean(), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"active_role IN ({ROLES})", name=op.f("ck_telegram_links_active_role")),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_telegram_links_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telegram_links")),
        sa.UniqueConstraint("account_id", name=op.f("uq_telegram_links_account_id")),
        sa.UniqueConstraint("telegram_user_id", name=op.f("uq_telegram_links_telegram_user_id")),
    )
    # An account bound before it had an active role (cannot happen: binding sets it) would
    # take the listener's, the role every account with a binding may fall back to.
    _execute(
        "INSERT INTO telegram_links (id, account_id, telegram_user_id, chat_id, active_role, "
        "consent_at, consent_version, muted, digest_enabled, blocked, linked_at) "
        "SELECT bindings.id, bindings.account_id, bindings.user_id, bindings.chat_id, "
        "COALESCE(accounts.active_role, 'listener'), accounts.consent_at, "
        "accounts.consent_version, accounts.muted, accounts.digest_enabled, bindings.blocked, "
        "bindings.linked_at FROM bindings JOIN accounts ON accounts.id = bindings.account_id "
        "WHERE bindings.messenger = 'telegram'"
    )
    if op.get_bind().dialect.name == "postgresql":
        _execute(
            "SELECT setval(pg_get_serial_sequence('telegram_links', 'id'), "
            "COALESCE((SELECT max(id) FROM telegram_links), 0) + 1, false)"
        )
    op.drop_table("bindings")

    # Plain ALTER TABLE, never a batch copy of accounts on SQLite: dropping the old table with
    # foreign keys on would cascade to every row that names an account.
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(op.f("ck_accounts_push_to"), "accounts", type_="check")
        op.drop_constraint(op.f("ck_accounts_active_role"), "accounts", type_="check")
    for column in ACCOUNT_COLUMNS[::-1]:
        op.drop_column("accounts", column)
