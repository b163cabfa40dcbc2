"""The sender of an update as plain rows: their binding in the messenger and its account, read
with one Core statement on every update.

Most updates only read who the sender is (a list, a card, a decision: the actor and the
consent); loading the ORM's Binding, Account and roles for each was a good share of an update's
cost (docs/BENCHMARKS.md). A flow that changes the account (the consent, the role, the
notification settings) loads the ORM's objects then (bot.conversation.turn.Turn.for_change).
`Facts` and `BindingFacts` are what both give to a reader.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

from sqlalchemy import Row, bindparam, select

from storage.models import Account, AccountRole, Binding


@dataclass(frozen=True)
class AccountRow:
    """What the bot keeps of the person, as read (Account's columns the bot uses; the roles'
    codes in the order the ORM's relationship gives them)."""

    id: int
    full_name: str
    organization_id: int | None
    active_role: str | None
    consent_at: datetime | None
    consent_version: str | None
    muted: bool
    muted_at: datetime | None
    digest_enabled: bool
    push_to: str | None
    role_codes: tuple[str, ...]


@dataclass(frozen=True)
class BindingRow:
    """A binding with its account, as read."""

    id: int
    account_id: int
    messenger: str
    user_id: int
    chat_id: int
    blocked: bool
    linked_at: datetime
    account: AccountRow


# What a reader may know of an account (of a binding): the ORM's object or the plain row.
Facts: TypeAlias = Account | AccountRow
BindingFacts: TypeAlias = Binding | BindingRow


# The columns `sender_of` reads, labelled; with AccountRole's outer-joined: one row per role.
COLUMNS = (
    Binding.id.label("binding_id"),
    Binding.account_id,
    Binding.messenger,
    Binding.user_id,
    Binding.chat_id,
    Binding.blocked,
    Binding.linked_at,
    Account.full_name,
    Account.organization_id,
    Account.active_role,
    Account.consent_at,
    Account.consent_version,
    Account.muted,
    Account.muted_at,
    Account.digest_enabled,
    Account.push_to,
    AccountRole.role,
)


def sender_of(rows: Sequence[Row[Any]]) -> BindingRow | None:
    """The binding read by a statement of `COLUMNS` (one row per role of the account; none,
    or a row of NULLs from an outer join, for a user who is not bound)."""
    if not rows or rows[0].binding_id is None:
        return None
    first = rows[0]
    account = AccountRow(
        id=first.account_id,
        full_name=first.full_name,
        organization_id=first.organization_id,
        active_role=first.active_role,
        consent_at=first.consent_at,
        consent_version=first.consent_version,
        muted=first.muted,
        muted_at=first.muted_at,
        digest_enabled=first.digest_enabled,
        push_to=first.push_to,
        role_codes=tuple(sorted({row.role for row in rows if row.role is not None})),
    )
    return BindingRow(
        id=first.binding_id,
        account_id=first.account_id,
        messenger=first.messenger,
        user_id=first.user_id,
        chat_id=first.chat_id,
        blocked=first.blocked,
        linked_at=first.linked_at,
        account=account,
    )


# The binding of a messenger user (bindparams `messenger`, `user_id`), built once.
BY_USER = (
    select(*COLUMNS)
    .select_from(Binding)
    .join(Account, Account.id == Binding.account_id)
    .outerjoin(AccountRole, AccountRole.account_id == Account.id)
    .where(Binding.messenger == bindparam("messenger"), Binding.user_id == bindparam("user_id"))
)
