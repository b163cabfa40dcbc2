"""A batch from the web module writes exactly what the same applications sent one by one
write: new ones are created together (services.integration.create_new_applications), the rest
go one by one, and the outcomes, history rows and pushes are the same."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.clock import ManualClock
from services.domain import Source
from services.integration import NumberedApplication, upsert_application, upsert_applications
from storage.models import ApplicationEvent, OutboxMessage
from storage.repositories import Repositories
from tests import factories

ONE_BY_ONE = 1_000  # the same applications, numbered 1000 higher, sent one by one


def item(number: int, applicant: int, organization: int, status: str, version: int) -> Any:
    return NumberedApplication.model_validate(
        {
            "number": number,
            "applicant_id": applicant,
            "organization_id": organization,
            "program": factories.PROGRAM,
            "status": status,
            "version": version,
        }
    )


def batch(base: int) -> list[NumberedApplication]:
    """New ones in every status, one stored before, one named twice (created, then updated)."""
    return [
        item(base + 1, 3, 10, "new", 1),
        item(base + 2, 4, 10, "approved", 1),  # stored before as «new»: an update
        item(base + 3, 6, 20, "new", 1),
        item(base + 4, 3, 10, "new", 1),  # named twice: created, then cancelled
        item(base + 5, 6, 20, "approved", 1),
        item(base + 4, 3, 10, "cancelled", 2),
        item(base + 6, 4, 10, "new", 3),
    ]


def shape(rows: list[Any], base: int) -> list[tuple[Any, ...]]:
    """Rows without ids and times, numbers relative to `base`, comparable across both runs."""
    shaped = []
    for row in rows:
        if isinstance(row, ApplicationEvent):
            key: tuple[Any, ...] = (row.action, row.from_status, row.to_status, row.actor_name)
        else:
            key = (row.kind, row.account_id, row.chat_id, row.state, row.event_id is not None)
        shaped.append((row.application_number - base, *key))
    return sorted(shaped, key=repr)


async def written(
    session_factory: async_sessionmaker[AsyncSession], base: int
) -> tuple[list[Any], list[Any]]:
    numbers = range(base + 1, base + 7)
    async with session_factory() as session:
        events = await session.scalars(
            select(ApplicationEvent).where(ApplicationEvent.application_number.in_(numbers))
        )
        pushes = await session.scalars(
            select(OutboxMessage).where(OutboxMessage.application_number.in_(numbers))
        )
        return shape(list(events), base), shape(list(pushes), base)


async def test_a_batch_writes_what_one_by_one_writes(
    session_factory: async_sessionmaker[AsyncSession], seeded: None
) -> None:
    clock = ManualClock()
    async with session_factory() as session:
        repo = Repositories(session)
        for base in (0, ONE_BY_ONE):
            await upsert_application(
                repo, base + 2, item(base + 2, 4, 10, "new", 0), now=clock.now(), source=Source.API
            )
        await session.commit()
    clock.advance(minutes=1)

    async with session_factory() as session:
        repo = Repositories(session)
        outcomes = await upsert_applications(repo, batch(0), now=clock.now(), source=Source.API)
        singles = [
            await upsert_application(repo, one.number, one, now=clock.now(), source=Source.API)
            for one in batch(ONE_BY_ONE)
        ]
        await session.commit()

    assert [(o.number, o.result, o.version, o.status) for o in outcomes] == [
        (o.number - ONE_BY_ONE, o.result, o.version, o.status) for o in singles
    ]
    assert await written(session_factory, 0) == await written(session_factory, ONE_BY_ONE)


async def test_a_new_applications_push_names_its_creation(
    session_factory: async_sessionmaker[AsyncSession], seeded: None
) -> None:
    clock = ManualClock()
    async with session_factory() as session:
        await upsert_applications(
            Repositories(session), batch(0)[:1], now=clock.now(), source=Source.API
        )
        await session.commit()
        created = await session.scalar(
            select(ApplicationEvent.id).where(ApplicationEvent.application_number == 1)
        )
        pushes = list(
            await session.scalars(
                select(OutboxMessage).where(OutboxMessage.application_number == 1)
            )
        )

    assert [(p.kind, p.account_id, p.event_id) for p in pushes] == [
        ("new_application", 1, created),
        ("new_application", 2, created),
    ]
