"""Bulk approval on the director's «Не обработана» list, in each messenger through the real
front end and its double: all or several, a confirmation naming them, one optional comment,
each through the same race-safe decision with its own history row, push and decisions-webhook
entry."""

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
from tests.chats import Chat, labels, open_list
from tests.director_data import (
    BY_STATUS,
    DIRECTOR,
    events_of,
    seed_applications,
    snapshot,
)

pytestmark = pytest.mark.every_backend  # decisions in one update: the database's locks

NEW = sorted(BY_STATUS["new"], reverse=True)  # 39737 … 39730, newest first
SECOND = Actor(2, "Сидорова Анна Ивановна", Role.DIRECTOR, frozenset({Role.DIRECTOR}), 10)


@pytest.fixture
async def school(seeded: None, session_factory: async_sessionmaker[AsyncSession]) -> None:
    await seed_applications(session_factory)


async def outbox(session_factory: async_sessionmaker[AsyncSession]) -> list[OutboxMessage]:
    async with session_factory() as session:
        return list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


@pytest.mark.usefixtures("school")
async def test_approve_all_names_them_and_reports_those_processed_meanwhile(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    listing = await open_list(chat, DIRECTOR)
    assert ["✅ Одобрить все (8)", "☑️ Выбрать несколько"] in listing.buttons()
    confirm = await chat.press(DIRECTOR, "✅ Одобрить все (8)")
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

    prompt = await chat.press(DIRECTOR, "✍️ Одобрить с комментарием для всех")
    assert prompt.text.startswith("Одобрение заявок: 8")
    result = await chat.send(DIRECTOR, "Согласовано")
    assert result.text.startswith("Одобрено 6; уже обработаны 2: №39733, №39731\n\n📥 Заявки"), (
        result.text
    )
    assert "Заявок с таким статусом нет." in result.text
    assert chat.message(DIRECTOR, prompt.message_id).deleted

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
    chat.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_picking_several_approves_only_those(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await open_list(chat, DIRECTOR)
    picker = await chat.press(DIRECTOR, "☑️ Выбрать несколько")
    assert picker.text.startswith("Выбор заявок для одобрения")
    first = next(label for row in picker.buttons() for label in row if "№39737" in label)
    assert first.startswith("▫️ ")
    picker = await chat.press(DIRECTOR, first)
    assert "Выбрано: 1" in picker.text
    await chat.press(DIRECTOR, "▶")
    page2 = chat.message(DIRECTOR, picker.message_id)
    other = next(label for row in page2.buttons() for label in row if "№39731" in label)
    page2 = await chat.press(DIRECTOR, other)
    assert "Выбрано: 2" in page2.text
    confirm = await chat.press(DIRECTOR, "✅ Одобрить выбранные (2)")
    assert "Заявок к одобрению: 2" in confirm.text
    assert "№39737" in confirm.text
    assert "№39731" in confirm.text
    assert "№39736" not in confirm.text
    before = await snapshot(session_factory)
    result = await chat.press(DIRECTOR, "✅ Одобрить без комментария")
    assert result.text.startswith("Одобрено 2\n\n")
    assert chat.answer() == chat.toast("Одобрено: 2")
    after = await snapshot(session_factory)
    changed = {n for n in after.statuses if after.statuses[n] != before.statuses[n]}
    assert changed == {39737, 39731}
    assert after.events == before.events + 2
    # Pressed again, the approval has nothing kept: said so, nothing changes.
    again = BulkIntent(BulkAction.APPROVE).pack()
    await chat.press_data(DIRECTOR, again, result.message_id)
    assert chat.answer() == chat.alert("Список для одобрения уже не сохранён: откройте его заново.")
    assert await snapshot(session_factory) == after
    chat.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_the_directors_own_application_is_left_out_and_the_webhook_gets_each(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await factories.store(session_factory, factories.application(39800, 1, 10, "new"))
    webhook = {"DPO_WEBHOOK_URL": "http://127.0.0.1:9/decisions", "DPO_WEBHOOK_SECRET": "s" * 32}
    async with chat.another(**webhook) as bot:
        await open_list(bot, DIRECTOR)
        confirm = await bot.press(DIRECTOR, "✅ Одобрить все (9)")
        assert "Заявок к одобрению: 8" in confirm.text
        assert "Не войдут (решение по своей заявке принимают сотрудники): №39800" in confirm.text
        await bot.press(DIRECTOR, "✅ Одобрить без комментария")
        hooks = [row for row in await outbox(session_factory) if row.channel == "webhook"]
        assert sorted(row.application_number for row in hooks) == sorted(NEW)
        assert (await snapshot(session_factory)).statuses[39800] == "new"
        bot.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_bulk_buttons_only_on_the_directors_new_list(chat: Chat) -> None:
    await open_list(chat, DIRECTOR)
    approved = await chat.press(DIRECTOR, "Подтверждена")
    assert not any("Одобрить все" in label for label in labels(approved))
    listing = await open_list(chat, 1007)
    assert not any("Одобрить все" in label for label in labels(listing))
    chat.assert_no_errors()


@pytest.mark.usefixtures("school_unchanged")
async def test_leaving_the_bulk_comment_changes_nothing_and_says_so(chat: Chat) -> None:
    await open_list(chat, DIRECTOR)
    await chat.press(DIRECTOR, "✅ Одобрить все (8)")
    prompt = await chat.press(DIRECTOR, "✍️ Одобрить с комментарием для всех")
    await chat.send(DIRECTOR, "/menu")
    closed = chat.message(DIRECTOR, prompt.message_id)
    assert closed.text == (
        "⌛ Этот запрос больше не активен: вы открыли другой экран. Заявки не одобрены."
    )
    assert closed.buttons() == [["◀ К списку"], ["◀ В главное меню"]]
    await chat.press(DIRECTOR, "◀ К списку", prompt.message_id)
    await chat.press(DIRECTOR, "✅ Одобрить все (8)", prompt.message_id)
    await chat.press(DIRECTOR, "✍️ Одобрить с комментарием для всех", prompt.message_id)
    listing = await chat.send(DIRECTOR, "/cancel")
    assert listing.text.startswith("Действие отменено, заявка не изменена.\n\n📥 Заявки")
    chat.assert_no_errors()
