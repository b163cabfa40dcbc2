"""Typed SQLAlchemy 2 models of everything the bot keeps.

The web module is the system of record for organisations, accounts and applications; the bot keeps
the part it needs plus what only it knows: the history of decisions made here, the bindings of
accounts to messenger users, one-time link tokens and the outbox of messages that must not be
lost.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    false,
    true,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates
from sqlalchemy.schema import UniqueConstraint

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

STATUS_CODES = ("new", "approved", "cancelled", "included")
ROLE_CODES = ("director", "listener", "staff")
MESSENGERS = ("telegram", "max")
# Where an account's pushes go (Account.push_to): one messenger, or every bound one; NULL: the
# messenger bound last.
PUSH_BOTH = "both"
PUSH_TARGETS = (*MESSENGERS, PUSH_BOTH)
# Where a history row was made: in a messenger, through the integration API, on the command line.
EVENT_SOURCES = (*MESSENGERS, "api", "cli")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite has no time zones: store naive UTC there)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where an aware one is required")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(),
        dict[str, Any]: JSON(),
    }


class Organization(Base):
    """An educational organisation (ОО)."""

    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(500))
    municipality: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime]


def fold_name(value: str) -> str:
    """A name as search compares it: case-folded, «ё» as «е» (people type both)."""
    return value.casefold().replace("ё", "е")


def _folded_full_name(context: DefaultExecutionContext) -> str:
    """An account's `name_folded` when an INSERT names none (a Core insert of plain rows)."""
    parameters: dict[str, Any] = context.get_current_parameters()  # type: ignore[no-untyped-call]
    return fold_name(parameters["full_name"])


class Account(Base):
    """A person's account in the web module (signed in through Gosuslugi), and what the bot
    keeps of the person whatever messenger they use: the active role, the personal-data consent
    (its time and text version), whether pushes are muted, the daily digest, where pushes go."""

    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint(_in("active_role", ROLE_CODES), name="active_role"),
        CheckConstraint(_in("push_to", PUSH_TARGETS), name="push_to"),
        # A part of a name, across every account: trigrams (pg_trgm) serve LIKE '%…%' on
        # PostgreSQL (a staff search: 64 → 2 ms on the benchmark's 60,000 accounts). None on
        # SQLite, where scanning a B-tree of the names was slower than scanning the table.
        Index(
            "ix_accounts_name_folded",
            "name_folded",
            postgresql_using="gin",
            postgresql_ops={"name_folded": "gin_trgm_ops"},
        ).ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    full_name: Mapped[str] = mapped_column(String(255))
    # The name as search compares it (fold_name), stored so that a search compares plain
    # strings in the database: neither SQLite's lower() nor PostgreSQL's under a C locale folds
    # Cyrillic. Kept by the ORM whenever full_name is set (`_fold`) and by any INSERT that omits
    # it (the default); an UPDATE of full_name outside the ORM must set it too (none does).
    name_folded: Mapped[str] = mapped_column(Text, default=_folded_full_name)
    organization_id: Mapped[int | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT"), index=True
    )
    esia_oid: Mapped[str | None] = mapped_column(String(64), unique=True)
    # HMAC-SHA256 of the normalised SNILS with a secret key; the SNILS itself is never stored.
    snils_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    updated_at: Mapped[datetime]
    # NULL until the person is first bound (then the role with the most to do in the bot).
    active_role: Mapped[str | None] = mapped_column(String(16))
    consent_at: Mapped[datetime | None]
    consent_version: Mapped[str | None] = mapped_column(String(32))
    muted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # When pushes were muted (NULL while they are on), for the summary on unmuting.
    muted_at: Mapped[datetime | None]
    digest_enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # PUSH_TARGETS, or NULL: pushes go to the messenger bound last.
    push_to: Mapped[str | None] = mapped_column(String(16))

    roles: Mapped[list[AccountRole]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="AccountRole.role"
    )

    @property
    def role_codes(self) -> list[str]:
        return [r.role for r in self.roles]

    @validates("full_name")
    def _fold(self, _key: str, value: str) -> str:
        self.name_folded = fold_name(value)
        return value


class AccountRole(Base):
    __tablename__ = "account_roles"
    __table_args__ = (
        CheckConstraint(_in("role", ROLE_CODES), name="role"),
        Index("ix_account_roles_role", "role"),
    )

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(16), primary_key=True)


class Application(Base):
    """An application (заявка) for professional-competency assessment, as on the web card."""

    __tablename__ = "applications"
    __table_args__ = (
        CheckConstraint(_in("status", STATUS_CODES), name="status"),
        Index("ix_applications_org_status_created", "organization_id", "status", "created_at"),
    )

    number: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    applicant_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="RESTRICT"), index=True
    )
    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="RESTRICT")
    )
    program: Mapped[str | None] = mapped_column(Text)
    group: Mapped[str | None] = mapped_column("group_name", String(500))
    description: Mapped[str | None] = mapped_column(Text)
    study_from: Mapped[date | None] = mapped_column(Date)
    study_to: Mapped[date | None] = mapped_column(Date)
    study_form: Mapped[str | None] = mapped_column(String(255))
    listener_categories: Mapped[str | None] = mapped_column(Text)
    competencies: Mapped[str | None] = mapped_column(Text)
    dpo_organization: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    # Ordering of updates from the web module: an older version never overwrites a newer one.
    version: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    applicant: Mapped[Account] = relationship(lazy="joined", innerjoin=True)
    organization: Mapped[Organization] = relationship(lazy="joined", innerjoin=True)


class ApplicationEvent(Base):
    """One row of an application's history (история действий): a transition or a comment."""

    __tablename__ = "application_events"
    __table_args__ = (
        Index("ix_application_events_application", "application_number", "id"),
        CheckConstraint(_in("source", EVENT_SOURCES), name="source"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    application_number: Mapped[int] = mapped_column(
        ForeignKey("applications.number", ondelete="CASCADE")
    )
    actor_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL")
    )
    # Snapshot of who acted, so history reads the same after the account changes.
    actor_name: Mapped[str] = mapped_column(String(255))
    actor_role: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(16))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    comment: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]


class Binding(Base):
    """The binding of one messenger user to one account: an account has at most one user per
    messenger, a messenger user at most one account. What belongs to the person (consent,
    active role, mute, digest) is on the account; the binding keeps the chat and whether the
    user blocked the bot there."""

    __tablename__ = "bindings"
    __table_args__ = (
        CheckConstraint(_in("messenger", MESSENGERS), name="messenger"),
        UniqueConstraint("messenger", "user_id", name="uq_bindings_messenger_user"),
        UniqueConstraint("account_id", "messenger", name="uq_bindings_account_messenger"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    messenger: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int] = mapped_column(BigInteger)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    linked_at: Mapped[datetime]

    account: Mapped[Account] = relationship(lazy="joined", innerjoin=True)


class LinkToken(Base):
    """A one-time link token; only its SHA-256 hash is kept."""

    __tablename__ = "link_tokens"
    __table_args__ = (CheckConstraint(_in("kind", ("portal", "bot")), name="kind"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    # Portal-first tokens name the account; bot-first tokens name the messenger user who asked.
    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    # A portal token names the messenger user who redeemed it while a question is open: their
    # own switch of accounts, or (`move_requested_at` set) the bound owner's permission to move
    # the account to them. The token is then theirs alone until it is used or expires.
    messenger: Mapped[str | None] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    move_requested_at: Mapped[datetime | None]
    # The @username of the token's messenger user (as the messenger gave it), shown to whoever
    # is asked to confirm; cleared when the token is used.
    username: Mapped[str | None] = mapped_column(String(64))
    # Bot-first sign-in in progress (cleared when the token is used): when the mini app that
    # started it was opened (a launch no newer is refused), the OpenID Connect state (hashed),
    # nonce and PKCE verifier, and the hash of the key in the browser's cookie that ties the
    # flow to the browser that started it.
    launched_at: Mapped[datetime | None]
    oidc_state_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    oidc_nonce: Mapped[str | None] = mapped_column(String(64))
    oidc_code_verifier: Mapped[str | None] = mapped_column(String(128))
    browser_key_hash: Mapped[str | None] = mapped_column(String(64), unique=True)


class LinkFailure(Base):
    """A failed attempt to redeem a link token, kept for a minute to throttle guessing, per
    messenger user and overall.

    In the database rather than in memory, so the limits hold across bot replicas.
    """

    __tablename__ = "link_failures"
    __table_args__ = (
        Index("ix_link_failures_user_time", "messenger", "user_id", "created_at"),
        Index("ix_link_failures_time", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    messenger: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime]


class OutboxMessage(Base):
    """A message that must not be lost, written in the transaction of the change that caused it.

    `channel` is the messenger whose chat the row goes to, or "webhook" (the web module)."""

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint(_in("channel", (*MESSENGERS, "webhook")), name="channel"),
        CheckConstraint(_in("state", ("pending", "sent", "failed", "held")), name="state"),
        Index("ix_outbox_state_available", "state", "available_at"),
        Index("ix_outbox_chat", "chat_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    application_number: Mapped[int | None] = mapped_column(BigInteger)
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    available_at: Mapped[datetime]
    lease_until: Mapped[datetime | None]
    # Which dispatcher holds the lease: only it may record the outcome of its send.
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    # The messenger's id of the message sent (MAX's are strings).
    message_id: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)


class DigestRun(Base):
    """A local day whose directors' digest has been written to the outbox: once a day, even
    across restarts and with several dispatchers (the primary key admits one row per day)."""

    __tablename__ = "digest_runs"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    created_at: Mapped[datetime]
    recipients: Mapped[int] = mapped_column(Integer)


class FsmState(Base):
    """The state and data of one conversation (storage/states.py), in the embedded default.

    The key is the messenger and aiogram's StorageKey, which the Telegram-only bot used; a
    missing thread or business connection is stored as 0 or '' (Telegram never uses those
    values), so every key part can be in the primary key.
    """

    __tablename__ = "fsm_states"

    messenger: Mapped[str] = mapped_column(String(16), primary_key=True)
    bot_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    thread_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    business_connection_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    destiny: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str | None] = mapped_column(String(255))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class ProcessedUpdate(Base):
    """A messenger update that was handled: a repeated one is skipped. `key` is the update's
    identity in its messenger (Telegram: the update_id; MAX, whose updates have none: the
    event's own id)."""

    __tablename__ = "processed_updates"

    messenger: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(index=True)


class PollMarker(Base):
    """Where a bot's long polling stands with its messenger: the marker (MAX) that confirms every
    update before it, written once those updates are recorded handled, read at start so a
    restart asks with it (bot/max/polling.py, storage/poll_markers.py)."""

    __tablename__ = "poll_markers"

    messenger: Mapped[str] = mapped_column(String(16), primary_key=True)
    bot_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    marker: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


class JobLease(Base):
    """Who runs a periodic job until when: the job lock on SQLite (PostgreSQL: advisory locks)."""

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))
    until: Mapped[datetime]
