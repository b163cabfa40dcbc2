"""Test data of the director's scenarios: 15 applications of organisation 10 in four statuses
(over seed_school's people), one of organisation 20, and helpers to read what changed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.conversation.intents import AppAction, AppIntent, ListFilter, StatusCode
from storage.models import Application, ApplicationEvent, OutboxMessage
from tests import factories

DIRECTOR = 1001  # Петров Пётр Петрович, director of org 10 (account 1)
SECOND_DIRECTOR = 1002  # Сидорова Анна Ивановна, director of org 10 (account 2)
OTHER_DIRECTOR = 1005  # Морозов Игорь Викторович, director of org 20 (account 5)
LISTENER = 1003  # Войсковая Юлия Олеговна (account 3)
UNLINKED = 2000

# Oldest first: 39730 … 39744, one minute apart; applicants alternate between accounts 4 and 3.
STATUSES = ["new"] * 8 + ["approved"] * 3 + ["cancelled"] * 2 + ["included"] * 2
NUMBERS = [39730 + i for i in range(len(STATUSES))]
BY_STATUS = {
    status: [n for n, s in zip(NUMBERS, STATUSES, strict=True) if s == status]
    for status in set(STATUSES)
}
APPLICANT = {n: 3 if i % 2 else 4 for i, n in enumerate(NUMBERS)}
OTHER_ORG_NUMBER = 40001
NEWEST_NEW = max(BY_STATUS["new"])  # 39737, Войсковая (account 3)
STALE = "Кнопка устарела, откройте меню заново: /menu"


def forged(action: AppAction, number: int, status: StatusCode | None = None) -> str:
    """A press's payload as a forger would write it: any action on any application."""
    return AppIntent(action=action, number=number, status=status).pack()


def largest_card_press(action: AppAction, status: StatusCode, **flags: bool) -> AppIntent:
    """A card's button with every number at its largest, the list it came from remembered (all
    statuses, a search); `flags` set more (narrowed=True)."""
    return AppIntent(
        action=action,
        number=2**63 - 1,
        page=100_000,
        status=status,
        status_filter=ListFilter.ALL,
        list_page=100_000,
        search=True,
        **flags,
    )


async def seed_applications(session_factory: async_sessionmaker[AsyncSession]) -> None:
    async with session_factory() as session:
        for i, (number, status) in enumerate(zip(NUMBERS, STATUSES, strict=True)):
            session.add(
                factories.application(
                    number,
                    APPLICANT[number],
                    10,
                    status,
                    created_at=factories.T0 + timedelta(minutes=i),
                )
            )
        session.add(factories.application(OTHER_ORG_NUMBER, 6, 20, "new"))
        await session.commit()


@dataclass(frozen=True)
class Snapshot:
    statuses: dict[int, str]
    events: int
    outbox: int


async def snapshot(session_factory: async_sessionmaker[AsyncSession]) -> Snapshot:
    async with session_factory() as session:
        rows = await session.execute(select(Application.number, Application.status))
        events = await session.scalar(select(func.count()).select_from(ApplicationEvent))
        outbox = await session.scalar(select(func.count()).select_from(OutboxMessage))
    return Snapshot(dict(rows.tuples().all()), int(events or 0), int(outbox or 0))


@asynccontextmanager
async def unchanged(session_factory: async_sessionmaker[AsyncSession]) -> AsyncIterator[None]:
    """What runs inside changes nothing that matters: no status, history row or push."""
    before = await snapshot(session_factory)
    yield
    assert await snapshot(session_factory) == before


async def status_of(session_factory: async_sessionmaker[AsyncSession], number: int) -> str:
    return (await snapshot(session_factory)).statuses[number]


async def events_of(
    session_factory: async_sessionmaker[AsyncSession], number: int
) -> list[ApplicationEvent]:
    return await _rows_of(session_factory, ApplicationEvent, number)


async def outbox_of(
    session_factory: async_sessionmaker[AsyncSession], number: int
) -> list[OutboxMessage]:
    return await _rows_of(session_factory, OutboxMessage, number)


Row = TypeVar("Row", ApplicationEvent, OutboxMessage)


async def _rows_of(
    session_factory: async_sessionmaker[AsyncSession], model: type[Row], number: int
) -> list[Row]:
    """The model's rows of the application, in the order they were written."""
    async with session_factory() as session:
        rows = await session.scalars(
            select(model).where(model.application_number == number).order_by(model.id)
        )
        return list(rows)
