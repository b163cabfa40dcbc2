"""Property test: random sequences of actions by random actors keep the contract's invariants."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from services.applications import Done, LostRace, Refused, perform_action
from services.domain import Action, Status
from storage.db import create_engine, create_session_factory
from storage.models import Application, ApplicationEvent, OutboxMessage
from storage.repositories import Repositories
from tests import factories
from tests.integration.test_domain import ACTOR_ROLES, actor
from tests.spec_table import ALLOWED

TERMINAL = {"cancelled", "included"}
APPLICATIONS = {500: (3, 10), 501: (4, 10), 502: (6, 20)}  # number: (applicant, organisation)

steps = st.lists(
    st.tuples(
        st.sampled_from([(a, r) for a, roles in ACTOR_ROLES.items() for r in sorted(roles)]),
        st.sampled_from(list(Action)),
        st.sampled_from(sorted(APPLICATIONS)),
        st.sampled_from(["new", "approved", None]),  # the status the actor saw, if any
    ),
    max_size=30,
)


def in_scope(account_id: int, role: str, number: int) -> bool:
    applicant, organization = APPLICATIONS[number]
    if role == "staff":
        return True
    if role == "listener":
        return account_id == applicant
    return factories_org(account_id) == organization


def factories_org(account_id: int) -> int | None:
    return {1: 10, 2: 10, 3: 10, 4: 10, 5: 20, 6: 20, 7: None}[account_id]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sequence=steps)
def test_random_sequences_keep_invariants(sqlite_template: Path, sequence: list) -> None:  # type: ignore[type-arg]
    asyncio.run(_check(sqlite_template, sequence))


async def _check(template: Path, sequence: list) -> None:  # type: ignore[type-arg]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "db.sqlite3"
        shutil.copyfile(template, path)
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        sessions = create_session_factory(engine)
        try:
            async with sessions() as session:
                await factories.seed_school(session)
                for number, (applicant, organization) in APPLICATIONS.items():
                    session.add(factories.application(number, applicant, organization))
                await session.commit()

            model = dict.fromkeys(APPLICATIONS, "new")
            done = dict.fromkeys(APPLICATIONS, 0)
            for (account_id, role), action, number, seen in sequence:
                before = model[number]
                async with sessions() as session:
                    repo = Repositories(session)
                    outbox_before = await session.scalar(select(func.count(OutboxMessage.id)))
                    outcome = await perform_action(
                        repo,
                        actor(account_id, role),
                        number,
                        action,
                        comment="Комментарий" if action is Action.COMMENT else None,
                        expected_status=None if seen is None else Status(seen),
                    )
                    await session.commit()
                    outbox_after = await session.scalar(select(func.count(OutboxMessage.id)))
                stale = seen is not None and seen != before
                allowed = in_scope(account_id, role, number) and before in ALLOWED.get(
                    (role, action.value), {}
                )
                if stale:
                    assert isinstance(outcome, LostRace), outcome
                    assert outcome.current_status.value == before
                if allowed and not stale:
                    assert isinstance(outcome, Done), (role, action, before, outcome)
                    to = ALLOWED[(role, action.value)][before]
                    assert (outcome.from_status.value, outcome.to_status.value) == (before, to)
                    if before in TERMINAL:
                        assert to == before  # terminal states stay terminal
                    model[number] = to
                    done[number] += 1
                else:
                    assert isinstance(outcome, Refused | LostRace), outcome
                    assert outbox_after == outbox_before  # refused actions change nothing

                async with sessions() as session:
                    status = await session.scalar(
                        select(Application.status).where(Application.number == number)
                    )
                assert status == model[number]

            async with sessions() as session:
                for number in APPLICATIONS:
                    events = await session.scalar(
                        select(func.count())
                        .select_from(ApplicationEvent)
                        .where(ApplicationEvent.application_number == number)
                    )
                    assert events == done[number]  # history rows == successful actions
        finally:
            await engine.dispose()
