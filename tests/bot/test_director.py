"""The director's workflow in each messenger, through the real front end and its double: list,
filters, search, card, approve and cancel with a comment, comments, history, deep link."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.applications import perform_action
from services.clock import ManualClock
from services.domain import Action, Actor, Role
from storage.repositories import Repositories
from tests.chats import (
    Chat,
    assert_decided_with_a_comment,
    labels,
    numbers_on,
    open_card,
    open_list,
    row_label,
)
from tests.director_data import (
    BY_STATUS,
    DIRECTOR,
    NEWEST_NEW,
    NUMBERS,
    OTHER_ORG_NUMBER,
    events_of,
    outbox_of,
    seed_applications,
    status_of,
)

pytestmark = pytest.mark.usefixtures("no_errors_in_chat")


@pytest.fixture
async def school(seeded: None, session_factory: async_sessionmaker[AsyncSession]) -> None:
    await seed_applications(session_factory)


@pytest.mark.usefixtures("school")
@pytest.mark.every_backend  # search: the database compares the stored folded names
async def test_director_pages_filters_and_searches(chat: Chat) -> None:
    menu = await chat.send(DIRECTOR, "/menu")
    assert menu.buttons()[0] == ["📥 Заявки (8 новых)"]
    listing = await chat.press(DIRECTOR, "📥 Заявки (8 новых)")
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

    second = await chat.press(DIRECTOR, "▶")
    assert second.message_id == menu.message_id
    assert numbers_on(second) == [39731, 39730]
    assert ["◀", "2/2"] in second.buttons()
    assert numbers_on(await chat.press(DIRECTOR, "◀"))[0] == 39737

    for label, status in [
        ("Подтверждена", "approved"),
        ("Отменена", "cancelled"),
        ("Включен в группу", "included"),
        ("Не обработана", "new"),
    ]:
        filtered = await chat.press(DIRECTOR, label)
        assert filtered.message_id == menu.message_id
        assert numbers_on(filtered) == sorted(BY_STATUS[status], reverse=True)[:6]
        assert f"• {label}" in labels(filtered)

    everything = await chat.press(DIRECTOR, "Все")
    assert "Статус: все" in everything.text
    assert "Найдено: 15" in everything.text
    assert "Страница 1 из 3" in everything.text
    assert row_label(everything, 39744).startswith("👥 №39744")  # icons when statuses mix
    seen = numbers_on(everything)
    seen += numbers_on(await chat.press(DIRECTOR, "▶"))
    last = await chat.press(DIRECTOR, "▶")
    seen += numbers_on(last)
    assert ["◀", "3/3"] in last.buttons()
    assert seen == sorted(NUMBERS, reverse=True)  # 15, never organisation 20's


@pytest.mark.usefixtures("school")
@pytest.mark.every_backend  # search: the database compares the stored folded names
async def test_director_searches_by_name_and_by_number(chat: Chat) -> None:
    await open_list(chat, DIRECTOR)
    prompt = await chat.press(DIRECTOR, "🔍 Поиск")
    assert "Напишите фамилию или имя заявителя" in prompt.text
    assert prompt.buttons() == [["Отмена"]]

    found = await chat.send(DIRECTOR, "войсковая")  # any case, a part of the name
    assert chat.message(DIRECTOR, prompt.message_id).deleted
    assert "Поиск: «войсковая»" in found.text
    assert "Найдено: 7" in found.text  # every status: the search looks at all of them
    voiskovaya = [n for n in NUMBERS if n % 2]  # account 3's applications
    page = numbers_on(found) + numbers_on(await chat.press(DIRECTOR, "▶"))
    assert page == sorted(voiskovaya, reverse=True)

    only_new = await chat.press(DIRECTOR, "Не обработана")
    assert "Поиск: «войсковая»" in only_new.text
    assert numbers_on(only_new) == [39737, 39735, 39733, 39731]
    cleared = await chat.press(DIRECTOR, "✖ Сбросить поиск")
    assert "Поиск" not in cleared.text.split("\n")[2]
    assert numbers_on(cleared)[:2] == [39737, 39736]

    by_first_name = await chat.send(DIRECTOR, "АЛЕКСАНДРА")  # typed without «🔍 Поиск»
    assert "Найдено: 8" in by_first_name.text  # Байдуганова Александра Юрьевна's
    by_yo = await chat.send(DIRECTOR, "Юрьевна")
    assert "Найдено: 8" in by_yo.text

    card = await chat.send(DIRECTOR, "39735")  # a number opens the card
    assert card.text.startswith("Заявка №39735")
    card = await chat.send(DIRECTOR, "№ 39744")
    assert card.text.startswith("Заявка №39744")
    nothing = await chat.send(DIRECTOR, str(OTHER_ORG_NUMBER))  # another organisation's
    assert "По этому запросу заявок не найдено." in nothing.text
    assert numbers_on(nothing) == []
    nothing = await chat.send(DIRECTOR, "Иванов%_")
    assert "По этому запросу заявок не найдено." in nothing.text


@pytest.mark.usefixtures("school")
async def test_card_shows_every_field_and_only_allowed_buttons(chat: Chat) -> None:
    card = await open_card(chat, DIRECTOR, NEWEST_NEW)
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
    included = await chat.send(DIRECTOR, "39744")
    assert "Статус: Включен в группу" in included.text
    assert included.buttons() == [["💬 Комментарии", "🕓 История"], ["◀ К списку"]]
    back = await chat.press(DIRECTOR, "◀ К списку", included.message_id)
    assert "Статус: «Не обработана»" in back.text


@pytest.mark.usefixtures("school")
async def test_list_is_kept_when_going_back_from_a_card(chat: Chat) -> None:
    listing = await open_list(chat, DIRECTOR)
    await chat.press(DIRECTOR, "Все")
    second = await chat.press(DIRECTOR, "▶")
    await chat.press(DIRECTOR, row_label(second, 39736))
    await chat.press(DIRECTOR, "🕓 История")
    await chat.press(DIRECTOR, "◀ К заявке")
    back = await chat.press(DIRECTOR, "◀ К списку")
    assert back.message_id == listing.message_id
    assert "Статус: все" in back.text
    assert "Страница 2 из 3" in back.text


@pytest.mark.usefixtures("school")
async def test_director_approves_with_a_comment_and_cancels_with_a_reason(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    card = await open_card(chat, DIRECTOR, NEWEST_NEW)
    prompt = await chat.press(DIRECTOR, "✅ Одобрить")
    assert prompt.message_id == card.message_id
    assert prompt.text.startswith("Одобрение заявки №39737\nВойсковая Юлия Олеговна · ")
    assert "Напишите комментарий для заявителя одним сообщением" in prompt.text
    assert prompt.buttons() == [["Без комментария", "Отмена"]]
    assert await status_of(session_factory, NEWEST_NEW) == "new"

    clock.advance(minutes=5)  # 06:05 UTC is 11:05 in Asia/Yekaterinburg
    approved = await chat.send(DIRECTOR, "Одобряю, ждём на диагностике")
    assert chat.message(DIRECTOR, prompt.message_id).deleted
    assert_decided_with_a_comment(
        approved,
        "✅ Заявка №39737 одобрена. Заявитель получит уведомление с вашим комментарием.",
        "Подтверждена руководителем ОО",
        "Петров Пётр Петрович (Руководитель ОО), 01.09.2026 11:05",
        "Одобряю, ждём на диагностике",
    )

    assert await status_of(session_factory, NEWEST_NEW) == "approved"
    [event] = await events_of(session_factory, NEWEST_NEW)
    assert (event.action, event.actor_account_id, event.source) == ("approve", 1, chat.messenger)
    assert event.comment == "Одобряю, ждём на диагностике"
    [push] = await outbox_of(session_factory, NEWEST_NEW)
    assert (push.account_id, push.kind, push.event_id) == (3, "status_changed", event.id)

    back = await chat.press(DIRECTOR, "◀ К списку")
    assert "Статус: все" in back.text  # the list the card was opened from
    back = await chat.press(DIRECTOR, "Не обработана")
    assert "Найдено: 7" in back.text
    confirm = await chat.press(DIRECTOR, row_label(back, 39736))
    confirm = await chat.press(DIRECTOR, "❌ Отменить")
    assert confirm.text.startswith("Отменить заявку №39736? Заявитель получит уведомление.")
    assert confirm.buttons() == [["Да, отменить", "Нет"]]
    reason = await chat.press(DIRECTOR, "Да, отменить")
    assert "Напишите причину отмены для заявителя" in reason.text
    clock.advance(minutes=10)
    cancelled = await chat.send(DIRECTOR, "Заявка подана повторно, см. №39734")
    assert "❌ Заявка №39736 отменена." in cancelled.text
    assert "Статус: Отменена" in cancelled.text
    assert "Петров Пётр Петрович (Руководитель ОО), 01.09.2026 11:15" in cancelled.text
    [event] = await events_of(session_factory, 39736)
    assert (event.action, event.comment) == ("cancel", "Заявка подана повторно, см. №39734")
    [push] = await outbox_of(session_factory, 39736)
    assert (push.account_id, push.event_id) == (4, event.id)

    history = await chat.press(DIRECTOR, "🕓 История")
    assert history.text.split("\n\n")[1].split("\n") == [
        "01.09.2026 11:15 · Петров Пётр Петрович (Руководитель ОО)",
        "Отменена: «Не обработана» → «Отменена»",
        "Комментарий: Заявка подана повторно, см. №39734",
        f"Источник: {chat.name}",
    ]
    await chat.start(DIRECTOR, f"app_{NEWEST_NEW}")
    history = await chat.press(DIRECTOR, "🕓 История")
    assert history.text.split("\n\n")[1].split("\n") == [
        "01.09.2026 11:05 · Петров Пётр Петрович (Руководитель ОО)",
        "Одобрена: «Не обработана» → «Подтверждена руководителем ОО»",
        "Комментарий: Одобряю, ждём на диагностике",
        f"Источник: {chat.name}",
    ]


@pytest.mark.usefixtures("school")
async def test_decision_without_a_comment(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await open_card(chat, DIRECTOR, NEWEST_NEW)
    await chat.press(DIRECTOR, "✅ Одобрить")
    approved = await chat.press(DIRECTOR, "Без комментария")
    assert chat.answer() == chat.toast("Заявка одобрена")
    assert approved.text.startswith("✅ Заявка №39737 одобрена. Заявитель получит уведомление.\n")
    assert "Комментарий:" not in approved.text
    [event] = await events_of(session_factory, NEWEST_NEW)
    assert event.comment is None
    [push] = await outbox_of(session_factory, NEWEST_NEW)
    assert push.event_id == event.id


@pytest.mark.usefixtures("school_unchanged")
async def test_abandoning_a_comment_input_changes_nothing(chat: Chat) -> None:
    await open_card(chat, DIRECTOR, NEWEST_NEW)

    await chat.press(DIRECTOR, "✅ Одобрить")
    aborted = await chat.press(DIRECTOR, "Отмена")
    assert chat.answer() == chat.toast("Действие отменено, заявка не изменена.")
    assert aborted.text.startswith("Действие отменено, заявка не изменена.\n\nЗаявка №39737")
    assert aborted.buttons()[0] == ["✅ Одобрить", "❌ Отменить"]
    # The input is over: the next text is a search, not a comment.
    assert "По этому запросу заявок не найдено." in (await chat.send(DIRECTOR, "Передумал")).text

    await chat.press_on(aborted, "❌ Отменить")
    prompt = await chat.press_on(aborted, "Да, отменить")
    card = await chat.send(DIRECTOR, "/cancel")
    assert chat.message(DIRECTOR, prompt.message_id).deleted
    assert card.text.startswith("Действие отменено, заявка не изменена.\n\nЗаявка №39737")
    assert "По этому запросу" in (await chat.send(DIRECTOR, "Не та заявка")).text

    await chat.press_on(card, "✅ Одобрить")
    await chat.send(DIRECTOR, "/menu")  # any command or button leaves the input
    late = await chat.send(DIRECTOR, "Случайный текст")  # not silently a search: asked
    assert late.text.startswith("Это сообщение пришло, когда запрос комментария")
    assert "По этому запросу" in (await chat.send(DIRECTOR, "Случайный текст")).text

    await chat.press_on(await open_list(chat, DIRECTOR), "🔍 Поиск")
    listing = await chat.send(DIRECTOR, "/cancel")
    assert listing.text.startswith("Поиск отменён.\n\n📥 Заявки")

    nothing = await chat.send(DIRECTOR, "/cancel")
    assert nothing.text == "Сейчас нечего отменять. Главное меню — /menu."


@pytest.mark.usefixtures("school")
async def test_comments_thread_and_a_new_comment(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await open_card(chat, DIRECTOR, NEWEST_NEW)
    thread = await chat.press(DIRECTOR, "💬 Комментарии")
    assert thread.text == "💬 Комментарии · заявка №39737\n\nКомментариев пока нет."
    assert thread.buttons() == [["✍️ Написать комментарий"], ["◀ К заявке"]]
    prompt = await chat.press(DIRECTOR, "✍️ Написать комментарий")
    assert "Напишите комментарий одним сообщением — его получит заявитель." in prompt.text

    too_long = await chat.send(DIRECTOR, "я" * 1001)
    assert too_long.text.startswith("Комментарий слишком длинный: не больше 1000 символов.")
    thread = await chat.send(DIRECTOR, "Уточните, пожалуйста, <группу> & даты")
    assert thread.text.startswith("💬 Комментарий к заявке №39737 отправлен заявителю.")
    assert "01.09.2026 11:00 · Петров Пётр Петрович (Руководитель ОО)\n" in thread.text
    assert thread.text.endswith("Уточните, пожалуйста, <группу> & даты")

    assert await status_of(session_factory, NEWEST_NEW) == "new"
    [event] = await events_of(session_factory, NEWEST_NEW)
    assert (event.action, event.comment) == ("comment", "Уточните, пожалуйста, <группу> & даты")
    [push] = await outbox_of(session_factory, NEWEST_NEW)
    assert (push.account_id, push.kind, push.event_id) == (3, "comment", event.id)
    await chat.press(DIRECTOR, "✍️ Написать комментарий")
    abandoned = await chat.send(DIRECTOR, "/cancel")
    assert abandoned.text.startswith(
        "Действие отменено, заявка не изменена.\n\n💬 Комментарии · заявка №39737"
    )
    assert len(await events_of(session_factory, NEWEST_NEW)) == 1
    card = await chat.press(DIRECTOR, "◀ К заявке")
    assert card.buttons()[1] == ["💬 Комментарии (1)", "🕓 История"]


@pytest.mark.usefixtures("school")
@pytest.mark.every_backend  # pages and order are the database's
async def test_history_and_comments_are_paginated_newest_first(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
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
    await open_card(chat, DIRECTOR, 39735)
    history = await chat.press(DIRECTOR, "🕓 История")
    assert "Страница 1 из 3" in history.text
    assert history.text.index("Комментарий: Комментарий 12") < history.text.index(
        "Комментарий: Комментарий 8"
    )
    assert "Сидорова Анна Ивановна (Руководитель ОО)" in history.text
    assert history.buttons() == [["1/3", "▶"], ["◀ К заявке"]]
    await chat.press(DIRECTOR, "▶")
    last = await chat.press(DIRECTOR, "▶")
    assert "Страница 3 из 3" in last.text
    assert "Комментарий: Комментарий 1\n" in last.text
    assert "Комментарий 3" not in last.text

    await chat.press(DIRECTOR, "◀ К заявке")
    thread = await chat.press(DIRECTOR, "💬 Комментарии (12)")
    assert "Страница 1 из 3" in thread.text
    assert thread.buttons()[0] == ["1/3", "▶"]


@pytest.mark.usefixtures("school")
async def test_deep_link_opens_a_card_the_director_may_see(chat: Chat) -> None:
    card = await chat.start(DIRECTOR, f"app_{NEWEST_NEW}")
    assert card.text.startswith("Заявка №39737\nСтатус: Не обработана")
    assert card.buttons()[0] == ["✅ Одобрить", "❌ Отменить"]
    refused = await chat.start(DIRECTOR, f"app_{OTHER_ORG_NUMBER}")
    assert refused.text == "Заявка №40001 не найдена или недоступна вам."
    assert refused.buttons() == [["◀ В главное меню"]]
    missing = await chat.start(DIRECTOR, "app_1")
    assert missing.text == "Заявка №1 не найдена или недоступна вам."
