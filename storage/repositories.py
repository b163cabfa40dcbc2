"""Repositories: the queries the services need, grouped in one holder per DB session."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    Account,
    AccountRole,
    Application,
    ApplicationEvent,
    OutboxMessage,
    TelegramLink,
)


@dataclass
class ApplicationRepo:
    session: AsyncSession

    async def get(self, number: int) -> Application | None:
        return await self.session.get(Application, number, populate_existing=True)

    async def current_status(self, number: int) -> str | None:
        result = await self.session.execute(
            select(Application.status).where(Application.number == number)
        )
        return result.scalar_one_or_none()

    async def transition(self, number: int, expected: str, to: str, now: datetime) -> bool:
        """Conditional update: moves the status only if it is still the expected one."""
        result = await self.session.execute(
            update(Application)
            .where(Application.number == number, Application.status == expected)
            .values(status=to, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        assert isinstance(result, CursorResult)
        return result.rowcount == 1

    async def count(self, *, status: str, organization_id: int | None = None) -> int:
        query = select(func.count()).select_from(Application).where(Application.status == status)
        if organization_id is not None:
            query = query.where(Application.organization_id == organization_id)
        return int((await self.session.execute(query)).scalar_one())

    async def oldest_in_status(
        self, *, status: str, organization_id: int, limit: int
    ) -> Sequence[Application]:
        """An organisation's applications in one status, oldest first (the digest's list)."""
        query = (
            select(Application)
            .where(Application.status == status, Application.organization_id == organization_id)
            .order_by(Application.created_at, Application.number)
            .limit(limit)
        )
        return (await self.session.scalars(query)).all()

    async def touch(self, number: int, now: datetime) -> None:
        await self.session.execute(
            update(Application)
            .where(Application.number == number)
            .values(updated_at=now)
            .execution_options(synchronize_session=False)
        )


@dataclass
class AccountRepo:
    session: AsyncSession

    async def get(self, account_id: int) -> Account | None:
        return await self.session.get(Account, account_id)

    async def director_ids(self, organization_id: int) -> list[int]:
        result = await self.session.execute(
            select(Account.id)
            .join(AccountRole, AccountRole.account_id == Account.id)
            .where(Account.organization_id == organization_id, AccountRole.role == "director")
            .order_by(Account.id)
        )
        return list(result.scalars())


@dataclass
class EventRepo:
    session: AsyncSession

    async def add(self, **values: Any) -> ApplicationEvent:
        event = ApplicationEvent(**values)
        self.session.add(event)
        await self.session.flush([event])
        return event

    async def for_application(
        self, number: int, *, offset: int = 0, limit: int | None = None
    ) -> Sequence[ApplicationEvent]:
        """History, newest first."""
        query = (
            select(ApplicationEvent)
            .where(ApplicationEvent.application_number == number)
            .order_by(ApplicationEvent.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return (await self.session.scalars(query)).all()

    async def count_for_application(self, number: int) -> int:
        result = await self.session.execute(
            select(func.count())
            .select_from(ApplicationEvent)
            .where(ApplicationEvent.application_number == number)
        )
        return int(result.scalar_one())


@dataclass
class LinkRepo:
    session: AsyncSession

    async def by_telegram_user(self, telegram_user_id: int) -> TelegramLink | None:
        result = await self.session.execute(
            select(TelegramLink).where(TelegramLink.telegram_user_id == telegram_user_id)
        )
        return result.scalar_one_or_none()

    async def by_accounts(self, account_ids: Iterable[int]) -> list[TelegramLink]:
        ids = list(account_ids)
        if not ids:
            return []
        result = await self.session.execute(
            select(TelegramLink)
            .where(TelegramLink.account_id.in_(ids))
            .order_by(TelegramLink.account_id)
        )
        return list(result.scalars())

    async def digest_recipients(self) -> list[int]:
        """Accounts of directors who want the daily digest and whose organisation has
        applications «Не обработана»: linked, consent given, not muted, not blocked."""
        pending_organizations = select(Application.organization_id).where(
            Application.status == "new"
        )
        result = await self.session.execute(
            select(TelegramLink.account_id)
            .join(Account, Account.id == TelegramLink.account_id)
            .join(AccountRole, AccountRole.account_id == Account.id)
            .where(
                AccountRole.role == "director",
                Account.organization_id.in_(pending_organizations),
                TelegramLink.consent_at.is_not(None),
                TelegramLink.digest_enabled.is_(True),
                TelegramLink.muted.is_(False),
                TelegramLink.blocked.is_(False),
            )
            .order_by(TelegramLink.account_id)
        )
        return list(result.scalars())


@dataclass
class OutboxRepo:
    session: AsyncSession

    def add(self, **values: Any) -> OutboxMessage:
        message = OutboxMessage(**values)
        self.session.add(message)
        return message


@dataclass
class Repositories:
    """Every repository over one session (one transaction per update or request)."""

    session: AsyncSession
    applications: ApplicationRepo = field(init=False)
    accounts: AccountRepo = field(init=False)
    events: EventRepo = field(init=False)
    links: LinkRepo = field(init=False)
    outbox: OutboxRepo = field(init=False)

    def __post_init__(self) -> None:
        self.applications = ApplicationRepo(self.session)
        self.accounts = AccountRepo(self.session)
        self.events = EventRepo(self.session)
        self.links = LinkRepo(self.session)
        self.outbox = OutboxRepo(self.session)
