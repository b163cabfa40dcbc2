"""Every (role, action, status) combination of the status table, allowed and refused alike."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.texts.domain import refusal
from services.applications import Done, LostRace, Refused, perform_action
from services.clock import ManualClock
from services.domain import Action, Actor, Reason, ReasonCode, Role, Status
from storage.models import Application, ApplicationEvent, OutboxMessage
from storage.repositories import Repositories
from tests import factories
from tests.spec_table import ACTIONS, ALLOWED, LABELS, ROLES, STATUSES

# Who acts in each role on application 500 (org 10, applicant 3): see factories.seed_school.
ACTOR_ACCOUNTS = {"director": 1, "listener": 3, "staff": 7}
ACTOR_ROLES = {1: {"director", "listener"}, 2: {"director"}, 3: {"listener"}, 4: {"listener"}}
ACTOR_ROLES |= {5: {"director"}, 6: {"listener"}, 7: {"staff"}}
NAMES = {1: "Петров Пётр Петрович", 3: "Войсковая Юлия Олеговна", 7: "Иванова Ольга Николаевна"}
ORGS = {1: 10, 2: 10, 3: 10, 4: 10, 5: 20, 6: 20, 7: None}


def actor(account_id: int, role: str) -> Actor:
    return Actor(
        account_id=account_id,
        full_name=NAMES.get(account_id, f"Сотрудник {account_id}"),
        role=Role(role),
        roles=frozenset(Role(r) for r in ACTOR_ROLES[account_id]),
        organization_id=ORGS[account_id],
    )


async def seeded(session_factory: async_sessionmaker[AsyncSession], status: str) -> None:
    async with session_factory() as session:
        await factories.seed_school(session)
        session.add(factories.application(500, applicant_id=3, organization_id=10, status=status))
        await session.commit()


async def snapshot(session_factory: async_sessionmaker[AsyncSession]) -> tuple[str, int, int]:
    async with session_factory() as session:
        status = await session.scalar(select(Application.status).where(Application.number == 500))
        events = await session.scalar(select(func.count()).select_from(ApplicationEvent))
        outbox = await session.scalar(select(func.count()).select_from(OutboxMessage))
    assert status is not None
    return status, int(events or 0), int(outbox or 0)


async def outbox_accounts(session_factory: async_sessionmaker[AsyncSession]) -> list[int]:
    async with session_factory() as session:
        rows = await session.scalars(select(OutboxMessage.account_id).order_by(OutboxMessage.id))
        return sorted(a for a in rows if a is not None)


# Who is told, by the actor's role: the applicant hears of others' actions, the directors of
# the applicant's and the staff's.
EXPECTED_RECIPIENTS = {"director": [3], "listener": [1, 2], "staff": [1, 2, 3]}

COMBINATIONS = list(itertools.product(ROLES, ACTIONS, STATUSES))


@pytest.mark.parametrize(("role", "action", "status"), COMBINATIONS)
async def test_every_combination(
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    role: str,
    action: str,
    status: str,
) -> None:
    await seeded(session_factory, status)
    who = actor(ACTOR_ACCOUNTS[role], role)
    comment = "Проверено" if action == "comment" else None
    async with session_factory() as session:
        outcome = await perform_action(
            Repositories(session), who, 500, Action(action), comment=comment, clock=clock
        )
        await session.commit()

    expected = ALLOWED.get((role, action), {}).get(status)
    after = await snapshot(session_factory)
    if expected is None:
        assert isinstance(outcome, Refused), outcome
        assert after == (status, 0, 0)
        if role == "director" and action in ("approve", "cancel") and status != "new":
            assert outcome.reason == Reason(
                ReasonCode.ALREADY_DECIDED, number=500, status=Status(status)
            )
            assert (
                refusal(outcome.reason) == f"Заявка №500 уже обработана: статус «{LABELS[status]}»"
            )
    else:
        assert isinstance(outcome, Done), outcome
        assert (outcome.from_status.value, outcome.to_status.value) == (status, expected)
        assert after[:2] == (expected, 1)
        recipients = EXPECTED_RECIPIENTS[role]
        if (role, action, status) == ("listener", "cancel", "approved"):
            recipients = [*recipients, 7]  # staff are told of an approved one withdrawn
        assert await outbox_accounts(session_factory) == recipients
        async with session_factory() as session:
            event = (await session.scalars(select(ApplicationEvent))).one()
        assert (event.actor_account_id, event.actor_role, event.action) == (
            who.account_id,
            role,
            action,
        )
        assert (event.from_status, event.to_status, event.source) == (status, expected, "telegram")
        assert event.comment == comment
        assert event.created_at == clock.now()


@pytest.mark.parametrize(
    ("account_id", "role", "action", "reason"),
    [
        (5, "director", "approve", "Заявка №500 относится к другой организации"),
        (5, "director", "comment", "Заявка №500 относится к другой организации"),
        (4, "listener", "cancel", "Заявка №500 подана не вами"),
        (6, "listener", "comment", "Заявка №500 подана не вами"),
        (3, "director", "approve", "У вас нет роли «Руководитель ОО»"),
        (1, "staff", "include", "У вас нет роли «Сотрудник ЦОПМ / ГБУ ДПО «ЧИРО»»"),
        (1, "listener", "cancel", "Заявка №500 подана не вами"),
    ],
)
async def test_scope_and_role_refusals(
    session_factory: async_sessionmaker[AsyncSession],
    account_id: int,
    role: str,
    action: str,
    reason: str,
) -> None:
    await seeded(session_factory, "new")
    async with session_factory() as session:
        outcome = await perform_action(
            Repositories(session), actor(account_id, role), 500, Action(action), comment="Текст"
        )
        await session.commit()
    assert isinstance(outcome, Refused)
    assert refusal(outcome.reason) == reason
    assert await snapshot(session_factory) == ("new", 0, 0)


async def test_unknown_application_and_bad_comments(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    await seeded(session_factory, "new")
    director = actor(1, "director")
    async with session_factory() as session:
        repo = Repositories(session)
        unknown = await perform_action(repo, director, 999, Action.APPROVE)
        assert unknown == Refused(Reason(ReasonCode.NOT_FOUND, number=999))
        assert refusal(unknown.reason) == "Заявка №999 не найдена"
        empty = await perform_action(repo, director, 500, Action.COMMENT, comment="   ")
        assert empty == Refused(Reason(ReasonCode.COMMENT_EMPTY))
        assert refusal(empty.reason) == "Комментарий пуст: напишите текст комментария"
        too_long = await perform_action(repo, director, 500, Action.APPROVE, comment="я" * 1001)
        assert isinstance(too_long, Refused)
        assert "не больше 1000 символов" in refusal(too_long.reason)
        await session.commit()
    assert await snapshot(session_factory) == ("new", 0, 0)


async def test_stale_expected_status_is_a_lost_race(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    await seeded(session_factory, "cancelled")
    async with session_factory() as session:
        outcome = await perform_action(
            Repositories(session),
            actor(1, "director"),
            500,
            Action.APPROVE,
            expected_status=Status.NEW,
        )
    # The same words as for an application decided before the press.
    assert outcome == LostRace(
        Status.CANCELLED, Reason(ReasonCode.ALREADY_DECIDED, number=500, status=Status.CANCELLED)
    )
    assert refusal(outcome.reason) == "Заявка №500 уже обработана: статус «Отменена»"


async def test_muted_and_unlinked_recipients_get_no_outbox_rows(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    await seeded(session_factory, "new")
    async with session_factory() as session:
        link = await Repositories(session).links.by_user("telegram", 1001)
        assert link is not None
        link.account.muted = True
        other = await Repositories(session).links.by_user("telegram", 1002)
        assert other is not None
        await session.delete(other)
        await session.commit()
    async with session_factory() as session:
        outcome = await perform_action(
            Repositories(session), actor(3, "listener"), 500, Action.CANCEL
        )
        await session.commit()
    assert isinstance(outcome, Done)
    assert await outbox_accounts(session_factory) == []
