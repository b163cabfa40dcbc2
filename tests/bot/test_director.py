"""The director's workflow through the real Dispatcher and the Bot API double: list, filters,
search, card, approve and cancel with a comment, comments, history, deep link."""

from __future__ import annotations

import re

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.applications import perform_action
from services.clock import ManualClock
from services.domain import Action, Actor, Role
from storage.repositories import Repositories
from tests.director_data import (
    BY_STATUS,
    DIRECTOR,
    NEWEST_NEW,
    NUMBERS,
    OTHER_ORG_NUMBER,
    events_of,
    outbox_of,
    seed_applications,
    snapshot,
    status_of,
)
from tests.fakes.bot_api import Message
from tests.harness import BotHarness

ROW = re.compile(r"№(\d+) · ")


@pytest.fixture
async def school(seeded: None, session_factory: async_sessionmaker[AsyncSession]) -> None:
    await seed_applications(session_factory)


def numbers_on(message: Message) -> list[int]:
    """The applications listed on a list screen, in order."""
    return [
        int(match.group(1))
        for row in message.buttons()
        for label in row
        if (match := ROW.search(label))
    ]


def row_label(message: Message, number: int) -> str:
    return next(label for row in message.buttons() for label in row if f"№{number} · " in label)


async def open_list(harness: BotHarness, user: int = DIRECTOR) -> Message:
    menu = await harness.send(user, "/menu")
    return await harness.press(user, menu.buttons()[0][0])


async def open_card(harness: BotHarness, number: int, user: int = DIRECTOR) -> Message:
    """Open a card the way a director does: the list, the filter «Все», pages, the row."""
    listing = await open_list(harness, user)
    listing = await harness.press(user, "Все")
    while number not in numbers_on(listing):
        listing = await harness.press(user, "▶")
    return await harness.press(user, row_label(listing, number))


async def press_on(harness: BotHarness, message: Message, label: str) -> Message:
    """Press a button of an older message; returns that message as it is afterwards."""
    await harness.press(message.chat_id, label, message.message_id)
    return harness.api.message(message.chat_id, message.message_id)


def last_answer(harness: BotHarness) -> dict[str, object]:
    """The last callback answer: its text and whether it was an alert."""
    params = harness.api.calls_of("answerCallbackQuery")[-1].params
    return {key: params[key] for key in ("text", "show_alert") if key in params}


@pytest.mark.usefixtures("school")
@pytest.mark.every_backend  # search: the database compares the stored folded names
async def test_director_pages_filters_and_searches(harness: BotHarness) -> None:
    menu = await harness.send(DIRECTOR, "/menu")
    assert menu.buttons()[0] == ["📥 Заявки (8 новых)"]
    listing = await harness.press(DIRECTOR, "📥 Заявки (8 новых)")
    assert listing.message_id == menu.message_id  # one message, edited in place
    assert "Статус: «Не обработана»" in listing.text
    assert "Найдено: 8" in listing.text
    assert "Страница 1 из 2" in listing.text
    assert numbers_on(listing) == [39737, 39736, 39735, 39734, 39733, 39732]  # newest first
    assert row_label(listing, 39737).startswith("№39737 · Войсковая Ю. О. · Диагностика")
    assert listing.buttons()[6:] == [
        ["1/2", "▶"],
        ["• Не обработана", "Подтверждена"],
        ["Отменена", "Включен в группу", "Все"],
        ["🔍 Поиск"],
        ["✅ Одобрить все (8)", "☑️ Выбрать несколько"],
        ["📤 Выгрузить"],
        ["◀ В главное меню"],
    ]

    second = await harness.press(DIRECTOR, "▶")
    assert second.message_id == menu.message_id
    assert numbers_on(second) == [39731, 39730]
    assert ["◀", "2/2"] in second.buttons()
    assert numbers_on(await harness.press(DIRECTOR, "◀"))[0] == 39737

    for label, status in [
        ("Подтверждена", "approved"),
        ("Отменена", "cancelled"),
        ("Включен в группу", "included"),
        ("Не обработана", "new"),
    ]:
        filtered = await harness.press(DIRECTOR, label)
        assert filtered.message_id == menu.message_id
        assert numbers_on(filtered) == sorted(BY_STATUS[status], reverse=True)[:6]
        assert f"• {label}" in [text for row in filtered.buttons() for text in row]

    everything = await harness.press(DIRECTOR, "Все")
    assert "Статус: все" in everything.text
    assert "Найдено: 15" in everything.text
    assert "Страница 1 из 3" in everything.text
    assert row_label(everything, 39744).startswith("👥 №39744")  # icons when statuses mix
    seen = numbers_on(everything)
    seen += numbers_on(await harness.press(DIRECTOR, "▶"))
    last = await harness.press(DIRECTOR, "▶")
    seen += numbers_on(last)
    assert ["◀", "3/3"] in last.buttons()
    assert seen == sorted(NUMBERS, reverse=True)  # 15, never organisation 20's
    harness.assert_no_errors()


@pytest.mark.usefixtures("school")
@pytest.mark.every_backend  # search: the database compares the stored folded names
async def test_director_searches_by_name_and_by_number(harness: BotHarness) -> None:
    await open_list(harness)
    prompt = await harness.press(DIRECTOR, "🔍 Поиск")
    assert "Напишите фамилию или имя заявителя" in prompt.text
    assert prompt.buttons() == [["Отмена"]]

    found = await harness.send(DIRECTOR, "войсковая")  # any case, a part of the name
    assert harness.api.message(DIRECTOR, prompt.message_id).deleted
    assert "Поиск: «войсковая»" in found.text
    assert "Найдено: 7" in found.text  # every status: the search looks at all of them
    voiskovaya = [n for n in NUMBERS if n % 2]  # account 3's applications
    page = numbers_on(found) + numbers_on(await harness.press(DIRECTOR, "▶"))
    assert page == sorted(voiskovaya, reverse=True)

    only_new = await harness.press(DIRECTOR, "Не обработана")
    assert "Поиск: «войсковая»" in only_new.text
    assert numbers_on(only_new) == [39737, 39735, 39733, 39731]
    cleared = await harness.press(DIRECTOR, "✖ Сбросить поиск")
    assert "Поиск" not in cleared.text.split("\n")[2]
    assert numbers_on(cleared)[:2] == [39737, 39736]

    by_first_name = await harness.send(DIRECTOR, "АЛЕКСАНДРА")  # typed without «🔍 Поиск»
    assert "Найдено: 8" in by_first_name.text  # Байдуганова Александра Юрьевна's
    by_yo = await harness.send(DIRECTOR, "Юрьевна")
    assert "Найдено: 8" in by_yo.text

    card = await harness.send(DIRECTOR, "39735")  # a number opens the card
    assert card.text.startswith("Заявка №39735")
    card = await harness.send(DIRECTOR, "№ 39744")
    assert card.text.startswith("Заявка №39744")
    nothing = await harness.send(DIRECTOR, str(OTHER_ORG_NUMBER))  # another organisation's
    assert "По этому запросу заявок не найдено." in nothing.text
    assert numbers_on(nothing) == []
    nothing = await harness.send(DIRECTOR, "Иванов%_")
    assert "По этому запросу заявок не найдено." in nothing.text
    harness.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_card_shows_every_field_and_only_allowed_buttons(harness: BotHarness) -> None:
    card = await open_card(harness, NEWEST_NEW)
    lines = card.text.split("\n")
    assert lines[:2] == ["Заявка №39737", "Статус: Не обработана"]
    for expected in [
        "Заявитель: Войсковая Юлия Олеговна",
        "ОО: МАОУ «СОШ № 10» г. Челябинска",
        "Группа: Диагностика. Кадровый резерв руководителей",
        "Описание: Не указано",
        "Даты обучения: 06.09.2023 - 10.09.2023",
        "Форма обучения: Не указано",
        "Категория(и) слушателей: Не указано",
        "Совершенствуемые компетенции: Не указано",
        "Организация ДПО: ОГБУ «Челябинский центр оценки профессионального мастерства и "
        "квалификаций педагогов»",
        "Подана: 01.09.2026 11:07 · изменена: 01.09.2026 11:00",
    ]:
        assert expected in lines
    assert any(line.startswith("Программа: Диагностика личностно") for line in lines)
    assert card.buttons() == [
        ["✅ Одобрить", "❌ Отменить"],
        ["💬 Комментарии", "🕓 История"],
        ["◀ К списку"],
    ]
    included = await harness.send(DIRECTOR, "39744")
    assert "Статус: Включен в группу" in included.text
    assert included.buttons() == [["💬 Комментарии", "🕓 История"], ["◀ К списку"]]
    back = await harness.press(DIRECTOR, "◀ К списку", included.message_id)
    assert "Статус: «Не обработана»" in back.text
    harness.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_list_is_kept_when_going_back_from_a_card(harness: BotHarness) -> None:
    listing = await open_list(harness)
    await harness.press(DIRECTOR, "Все")
    second = await harness.press(DIRECTOR, "▶")
    await harness.press(DIRECTOR, row_label(second, 39736))
    await harness.press(DIRECTOR, "🕓 История")
    await harness.press(DIRECTOR, "◀ К заявке")
    back = await harness.press(DIRECTOR, "◀ К списку")
    assert back.message_id == listing.message_id
    assert "Статус: все" in back.text
    assert "Страница 2 из 3" in back.text
    harness.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_director_approves_with_a_comment_and_cancels_with_a_reason(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    card = await open_card(harness, NEWEST_NEW)
    prompt = await harness.press(DIRECTOR, "✅ Одобрить")
    assert prompt.message_id == card.message_id
    assert prompt.text.startswith("Одобрение заявки №39737\nВойсковая Юлия Олеговна · ")
    assert "Напишите комментарий для заявителя одним сообщением" in prompt.text
    assert prompt.buttons() == [["Без комментария", "Отмена"]]
    assert await status_of(session_factory, NEWEST_NEW) == "new"

    clock.advance(minutes=5)  # 06:05 UTC is 11:05 in Asia/Yekaterinburg
    approved = await harness.send(DIRECTOR, "Одобряю, ждём на диагностике")
    assert harness.api.message(DIRECTOR, prompt.message_id).deleted
    lines = approved.text.split("\n")
    assert lines[0] == (
        "✅ Заявка №39737 одобрена. Заявитель получит уведомление с вашим комментарием."
    )
    assert "Статус: Подтверждена руководителем ОО" in lines
    assert "Изменил(а) статус: Петров Пётр Петрович (Руководитель ОО), 01.09.2026 11:05" in lines
    assert "Комментарий: Одобряю, ждём на диагностике" in lines
    assert approved.buttons() == [["💬 Комментарии (1)", "🕓 История"], ["◀ К списку"]]

    assert await status_of(session_factory, NEWEST_NEW) == "approved"
    [event] = await events_of(session_factory, NEWEST_NEW)
    assert (event.action, event.actor_account_id, event.source) == ("approve", 1, "telegram")
    assert event.comment == "Одобряю, ждём на диагностике"
    [push] = await outbox_of(session_factory, NEWEST_NEW)
    assert (push.account_id, push.kind, push.event_id) == (3, "status_changed", event.id)

    back = await harness.press(DIRECTOR, "◀ К списку")
    assert "Статус: все" in back.text  # the list the card was opened from
    back = await harness.press(DIRECTOR, "Не обработана")
    assert "Найдено: 7" in back.text
    confirm = await harness.press(DIRECTOR, row_label(back, 39736))
    confirm = await harness.press(DIRECTOR, "❌ Отменить")
    assert confirm.text.startswith("Отменить заявку №39736? Заявитель получит уведомление.")
    assert confirm.buttons() == [["Да, отменить", "Нет"]]
    reason = await harness.press(DIRECTOR, "Да, отменить")
    assert "Напишите причину отмены для заявителя" in reason.text
    clock.advance(minutes=10)
    cancelled = await harness.send(DIRECTOR, "Заявка подана повторно, см. №39734")
    assert "❌ Заявка №39736 отменена." in cancelled.text
    assert "Статус: Отменена" in cancelled.text
    assert "Петров Пётр Петрович (Руководитель ОО), 01.09.2026 11:15" in cancelled.text
    [event] = await events_of(session_factory, 39736)
    assert (event.action, event.comment) == ("cancel", "Заявка подана повторно, см. №39734")
    [push] = await outbox_of(session_factory, 39736)
    assert (push.account_id, push.event_id) == (4, event.id)

    history = await harness.press(DIRECTOR, "🕓 История")
    assert history.text.split("\n\n")[1].split("\n") == [
        "01.09.2026 11:15 · Петров Пётр Петрович (Руководитель ОО)",
        "Отменена: «Не обработана» → «Отменена»",
        "Комментарий: Заявка подана повторно, см. №39734",
        "Источник: Telegram",
    ]
    await harness.send(DIRECTOR, f"/start app_{NEWEST_NEW}")
    history = await harness.press(DIRECTOR, "🕓 История")
    assert history.text.split("\n\n")[1].split("\n") == [
        "01.09.2026 11:05 · Петров Пётр Петрович (Руководитель ОО)",
        "Одобрена: «Не обработана» → «Подтверждена руководителем ОО»",
        "Комментарий: Одобряю, ждём на диагностике",
        "Источник: Telegram",
    ]
    harness.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_decision_without_a_comment(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await open_card(harness, NEWEST_NEW)
    await harness.press(DIRECTOR, "✅ Одобрить")
    approved = await harness.press(DIRECTOR, "Без комментария")
    assert last_answer(harness)["text"] == "Заявка одобрена"
    assert approved.text.startswith("✅ Заявка №39737 одобрена. Заявитель получит уведомление.\n")
    assert "Комментарий:" not in approved.text
    [event] = await events_of(session_factory, NEWEST_NEW)
    assert event.comment is None
    [push] = await outbox_of(session_factory, NEWEST_NEW)
    assert push.event_id == event.id
    harness.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_abandoning_a_comment_input_changes_nothing(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    before = await snapshot(session_factory)
    await open_card(harness, NEWEST_NEW)

    await harness.press(DIRECTOR, "✅ Одобрить")
    aborted = await harness.press(DIRECTOR, "Отмена")
    assert last_answer(harness)["text"] == "Действие отменено, заявка не изменена."
    assert aborted.text.startswith("Действие отменено, заявка не изменена.\n\nЗаявка №39737")
    assert aborted.buttons()[0] == ["✅ Одобрить", "❌ Отменить"]
    # The input is over: the next text is a search, not a comment.
    assert "По этому запросу заявок не найдено." in (await harness.send(DIRECTOR, "Передумал")).text

    await press_on(harness, aborted, "❌ Отменить")
    prompt = await press_on(harness, aborted, "Да, отменить")
    card = await harness.send(DIRECTOR, "/cancel")
    assert harness.api.message(DIRECTOR, prompt.message_id).deleted
    assert card.text.startswith("Действие отменено, заявка не изменена.\n\nЗаявка №39737")
    assert "По этому запросу" in (await harness.send(DIRECTOR, "Не та заявка")).text

    await press_on(harness, card, "✅ Одобрить")
    await harness.send(DIRECTOR, "/menu")  # any command or button leaves the input
    late = await harness.send(DIRECTOR, "Случайный текст")  # not silently a search: asked
    assert late.text.startswith("Это сообщение пришло, когда запрос комментария")
    assert "По этому запросу" in (await harness.send(DIRECTOR, "Случайный текст")).text

    await press_on(harness, await open_list(harness), "🔍 Поиск")
    listing = await harness.send(DIRECTOR, "/cancel")
    assert listing.text.startswith("Поиск отменён.\n\n📥 Заявки")

    nothing = await harness.send(DIRECTOR, "/cancel")
    assert nothing.text == "Сейчас нечего отменять. Главное меню — /menu."
    assert await snapshot(session_factory) == before
    harness.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_comments_thread_and_a_new_comment(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await open_card(harness, NEWEST_NEW)
    thread = await harness.press(DIRECTOR, "💬 Комментарии")
    assert thread.text == "💬 Комментарии · заявка №39737\n\nКомментариев пока нет."
    assert thread.buttons() == [["✍️ Написать комментарий"], ["◀ К заявке"]]
    prompt = await harness.press(DIRECTOR, "✍️ Написать комментарий")
    assert "Напишите комментарий одним сообщением — его получит заявитель." in prompt.text

    too_long = await harness.send(DIRECTOR, "я" * 1001)
    assert too_long.text.startswith("Комментарий слишком длинный: не больше 1000 символов.")
    thread = await harness.send(DIRECTOR, "Уточните, пожалуйста, <группу> & даты")
    assert thread.text.startswith("💬 Комментарий к заявке №39737 отправлен заявителю.")
    assert "01.09.2026 11:00 · Петров Пётр Петрович (Руководитель ОО)\n" in thread.text
    assert thread.text.endswith("Уточните, пожалуйста, <группу> & даты")

    assert await status_of(session_factory, NEWEST_NEW) == "new"
    [event] = await events_of(session_factory, NEWEST_NEW)
    assert (event.action, event.comment) == ("comment", "Уточните, пожалуйста, <группу> & даты")
    [push] = await outbox_of(session_factory, NEWEST_NEW)
    assert (push.account_id, push.kind, push.event_id) == (3, "comment", event.id)
    await harness.press(DIRECTOR, "✍️ Написать комментарий")
    abandoned = await harness.send(DIRECTOR, "/cancel")
    assert abandoned.text.startswith(
        "Действие отменено, заявка не изменена.\n\n💬 Комментарии · заявка №39737"
    )
    assert len(await events_of(session_factory, NEWEST_NEW)) == 1
    card = await harness.press(DIRECTOR, "◀ К заявке")
    assert card.buttons()[1] == ["💬 Комментарии (1)", "🕓 История"]
    harness.assert_no_errors()


@pytest.mark.usefixtures("school")
@pytest.mark.every_backend  # pages and order are the database's
async def test_history_and_comments_are_paginated_newest_first(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    async with session_factory() as session:
        for i in range(12):
            clock.advance(minutes=1)
            director = Actor(
                2, "Сидорова Анна Ивановна", Role.DIRECTOR, frozenset({Role.DIRECTOR}), 10
            )
            comment = f"Комментарий {i + 1}"
            await perform_action(
                Repositories(session), director, 39735, Action.COMMENT, comment=comment, clock=clock
            )
        await session.commit()
    await open_card(harness, 39735)
    history = await harness.press(DIRECTOR, "🕓 История")
    assert "Страница 1 из 3" in history.text
    assert history.text.index("Комментарий: Комментарий 12") < history.text.index(
        "Комментарий: Комментарий 8"
    )
    assert "Сидорова Анна Ивановна (Руководитель ОО)" in history.text
    assert history.buttons() == [["1/3", "▶"], ["◀ К заявке"]]
    await harness.press(DIRECTOR, "▶")
    last = await harness.press(DIRECTOR, "▶")
    assert "Страница 3 из 3" in last.text
    assert "Комментарий: Комментарий 1\n" in last.text
    assert "Комментарий 3" not in last.text

    await harness.press(DIRECTOR, "◀ К заявке")
    thread = await harness.press(DIRECTOR, "💬 Комментарии (12)")
    assert "Страница 1 из 3" in thread.text
    assert thread.buttons()[0] == ["1/3", "▶"]
    harness.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_deep_link_opens_a_card_the_director_may_see(harness: BotHarness) -> None:
    card = await harness.send(DIRECTOR, f"/start app_{NEWEST_NEW}")
    assert card.text.startswith("Заявка №39737\nСтатус: Не обработана")
    assert card.buttons()[0] == ["✅ Одобрить", "❌ Отменить"]
    refused = await harness.send(DIRECTOR, f"/start app_{OTHER_ORG_NUMBER}")
    assert refused.text == "Заявка №40001 не найдена или недоступна вам."
    assert refused.buttons() == [["◀ В главное меню"]]
    missing = await harness.send(DIRECTOR, "/start app_1")
    assert missing.text == "Заявка №1 не найдена или недоступна вам."
    harness.assert_no_errors()
