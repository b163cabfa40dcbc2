"""Bulk approval on the director's «Не обработана» list, through the real Dispatcher and the
Bot API double: all or several, a confirmation naming them, one optional comment, each through
the same race-safe decision with its own history row, push and decisions-webhook entry."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.conversation.intents import BulkAction, BulkIntent
from services.applications import perform_action
from services.clock import ManualClock
from services.domain import Action, Actor, Role
from storage.models import OutboxMessage
from storage.repositories import Repositories
from tests import factories
from tests.bot.test_director import last_answer
from tests.director_data import BY_STATUS, DIRECTOR, events_of, seed_applications, snapshot
from tests.fakes.bot_api import FakeBotAPI, Message
from tests.harness import BotHarness, test_settings

pytestmark = pytest.mark.every_backend  # decisions in one update: the database's locks

NEW = sorted(BY_STATUS["new"], reverse=True)  # 39737 … 39730, newest first
SECOND = Actor(2, "Сидорова Анна Ивановна", Role.DIRECTOR, frozenset({Role.DIRECTOR}), 10)


@pytest.fixture
async def school(seeded: None, session_factory: async_sessionmaker[AsyncSession]) -> None:
    await seed_applications(session_factory)


async def new_list(harness: BotHarness) -> Message:
    menu = await harness.send(DIRECTOR, "/menu")
    return await harness.press(DIRECTOR, menu.buttons()[0][0])


async def outbox(session_factory: async_sessionmaker[AsyncSession]) -> list[OutboxMessage]:
    async with session_factory() as session:
        return list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


@pytest.mark.usefixtures("school")
async def test_approve_all_names_them_and_reports_those_processed_meanwhile(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    listing = await new_list(harness)
    assert ["✅ Одобрить все (8)", "☑️ Выбрать несколько"] in listing.buttons()
    confirm = await harness.press(DIRECTOR, "✅ Одобрить все (8)")
    assert confirm.message_id == listing.message_id
    assert confirm.text.startswith("Одобрить заявки?\nЗаявок к одобрению: 8")
    assert "№39737 · Войсковая Ю. О. · " in confirm.text
    assert "№39730 · Байдуганова А. Ю. · " in confirm.text
    assert confirm.buttons() == [
        ["✅ Одобрить без комментария"],
        ["✍️ Одобрить с комментарием для всех"],
        ["◀ К списку"],
    ]
    # Meanwhile the other director processes two of them.
    async with session_factory() as session:
        repo = Repositories(session)
        await perform_action(repo, SECOND, 39733, Action.APPROVE, clock=clock)
        await perform_action(repo, SECOND, 39731, Action.CANCEL, comment="Нет", clock=clock)
        await session.commit()
    rows_before = len(await outbox(session_factory))

    prompt = await harness.press(DIRECTOR, "✍️ Одобрить с комментарием для всех")
    assert prompt.text.startswith("Одобрение заявок: 8")
    result = await harness.send(DIRECTOR, "Согласовано")
    assert result.text.startswith("Одобрено 6; уже обработаны 2: №39733, №39731\n\n📥 Заявки"), (
        result.text
    )
    assert "Заявок с таким статусом нет." in result.text
    assert harness.api.message(DIRECTOR, prompt.message_id).deleted

    for number in NEW:
        if number in (39733, 39731):
            continue
        [event] = await events_of(session_factory, number)
        assert (event.action, event.comment, event.actor_account_id) == (
            "approve",
            "Согласовано",
            1,
        )
    pushes = (await outbox(session_factory))[rows_before:]
    assert sorted(row.application_number for row in pushes) == sorted(
        n for n in NEW if n not in (39733, 39731)
    )  # one push to each applicant
    harness.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_picking_several_approves_only_those(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await new_list(harness)
    picker = await harness.press(DIRECTOR, "☑️ Выбрать несколько")
    assert picker.text.startswith("Выбор заявок для одобрения")
    first = next(label for row in picker.buttons() for label in row if "№39737" in label)
    assert first.startswith("▫️ ")
    picker = await harness.press(DIRECTOR, first)
    assert "Выбрано: 1" in picker.text
    await harness.press(DIRECTOR, "▶")
    page2 = harness.api.message(DIRECTOR, picker.message_id)
    other = next(label for row in page2.buttons() for label in row if "№39731" in label)
    page2 = await harness.press(DIRECTOR, other)
    assert "Выбрано: 2" in page2.text
    confirm = await harness.press(DIRECTOR, "✅ Одобрить выбранные (2)")
    assert "Заявок к одобрению: 2" in confirm.text
    assert "№39737" in confirm.text
    assert "№39731" in confirm.text
    assert "№39736" not in confirm.text
    before = await snapshot(session_factory)
    result = await harness.press(DIRECTOR, "✅ Одобрить без комментария")
    assert result.text.startswith("Одобрено 2\n\n")
    assert last_answer(harness) == {"text": "Одобрено: 2"}
    after = await snapshot(session_factory)
    changed = {n for n in after.statuses if after.statuses[n] != before.statuses[n]}
    assert changed == {39737, 39731}
    assert after.events == before.events + 2
    # Pressed again, the approval has nothing kept: said so, nothing changes.
    again = BulkIntent(BulkAction.APPROVE).pack()
    await harness.press_data(DIRECTOR, again, result.message_id)
    assert last_answer(harness)["show_alert"] is True
    assert await snapshot(session_factory) == after
    harness.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_the_directors_own_application_is_left_out_and_the_webhook_gets_each(
    api: FakeBotAPI,
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> None:
    async with session_factory() as session:
        session.add(factories.application(39800, 1, 10, "new"))
        await session.commit()
    settings = test_settings(
        api,
        database_url,
        DPO_WEBHOOK_URL="http://127.0.0.1:9/decisions",
        DPO_WEBHOOK_SECRET="s" * 32,
    )
    harness = BotHarness(api, settings, session_factory, clock)
    try:
        await new_list(harness)
        confirm = await harness.press(DIRECTOR, "✅ Одобрить все (9)")
        assert "Заявок к одобрению: 8" in confirm.text
        assert "Не войдут (решение по своей заявке принимают сотрудники): №39800" in confirm.text
        await harness.press(DIRECTOR, "✅ Одобрить без комментария")
        hooks = [row for row in await outbox(session_factory) if row.channel == "webhook"]
        assert sorted(row.application_number for row in hooks) == sorted(NEW)
        assert (await snapshot(session_factory)).statuses[39800] == "new"
        harness.assert_no_errors()
    finally:
        await harness.close()


@pytest.mark.usefixtures("school")
async def test_bulk_buttons_only_on_the_directors_new_list(harness: BotHarness) -> None:
    await new_list(harness)
    approved = await harness.press(DIRECTOR, "Подтверждена")
    assert not any("Одобрить все" in label for row in approved.buttons() for label in row)
    staff = await harness.send(1007, "/menu")
    listing = await harness.press(1007, staff.buttons()[0][0])
    assert not any("Одобрить все" in label for row in listing.buttons() for label in row)
    harness.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_leaving_the_bulk_comment_changes_nothing_and_says_so(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    before = await snapshot(session_factory)
    await new_list(harness)
    await harness.press(DIRECTOR, "✅ Одобрить все (8)")
    prompt = await harness.press(DIRECTOR, "✍️ Одобрить с комментарием для всех")
    await harness.send(DIRECTOR, "/menu")
    closed = harness.api.message(DIRECTOR, prompt.message_id)
    assert closed.text == (
        "⌛ Этот запрос больше не активен: вы открыли другой экран. Заявки не одобрены."
    )
    assert closed.buttons() == [["◀ К списку"], ["◀ В главное меню"]]
    await harness.press(DIRECTOR, "◀ К списку", prompt.message_id)
    await harness.press(DIRECTOR, "✅ Одобрить все (8)", prompt.message_id)
    await harness.press(DIRECTOR, "✍️ Одобрить с комментарием для всех", prompt.message_id)
    listing = await harness.send(DIRECTOR, "/cancel")
    assert listing.text.startswith("Действие отменено, заявка не изменена.\n\n📥 Заявки")
    assert await snapshot(session_factory) == before
    harness.assert_no_errors()
