"""Races: many attempts on one application at once end with exactly one winner."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.texts.domain import STATUS_LABELS, refusal
from services.applications import Done, LostRace, Outcome, Refused, perform_action
from services.domain import Action
from storage.models import ApplicationEvent, OutboxMessage
from storage.repositories import Repositories
from tests.integration.test_domain import actor, seeded, snapshot


async def test_twenty_concurrent_approve_and_cancel_attempts_have_one_winner(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    await seeded(session_factory, "new")
    start = asyncio.Event()

    async def attempt(i: int) -> Outcome:
        who = actor(1 if i % 2 else 2, "director")
        action = Action.APPROVE if i % 2 else Action.CANCEL
        async with session_factory() as session:
            await start.wait()
            outcome = await perform_action(Repositories(session), who, 500, action)
            await session.commit()
            return outcome

    tasks = [asyncio.create_task(attempt(i)) for i in range(20)]
    await asyncio.sleep(0.05)
    start.set()
    outcomes = await asyncio.gather(*tasks)

    winners = [o for o in outcomes if isinstance(o, Done)]
    assert len(winners) == 1
    final = winners[0].to_status
    for loser in (o for o in outcomes if not isinstance(o, Done)):
        # The loser is told the new status, whether it lost the update or read it already.
        assert isinstance(loser, LostRace | Refused)
        assert f"«{STATUS_LABELS[final]}»" in refusal(loser.reason)

    status, events, outbox = await snapshot(session_factory)
    assert (status, events) == (final.value, 1)
    assert outbox == 1  # one push to the applicant
    async with session_factory() as session:
        event_ids = set(await session.scalars(select(OutboxMessage.event_id)))
        only_event = await session.scalar(select(func.min(ApplicationEvent.id)))
    assert event_ids == {only_event}
