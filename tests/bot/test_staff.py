"""Staff («Сотрудник ЦОПМ / ГБУ ДПО «ЧИРО»») in each messenger, through the real front end and
its double:
director-approved applications of every organisation, the filters by organisation and by
programme, «👥 Включить в группу» with a comment, «❌ Отменить» after a confirmation, refusals."""

from __future__ import annotations

import re

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.conversation.intents import (
    AppAction,
    Facet,
    FacetAction,
    FacetIntent,
    StatusCode,
)
from services.clock import ManualClock
from tests.chats import (
    Chat,
    Shown,
    assert_decided_with_a_comment,
    labels,
    numbers_on,
    open_list,
    row_label,
)
from tests.director_data import (
    DIRECTOR,
    LISTENER,
    NEWEST_NEW,
    OTHER_ORG_NUMBER,
    STALE,
    events_of,
    forged,
    outbox_of,
    status_of,
)
from tests.roles_data import APPROVED, APPROVED_20, DIGITAL, EXPERT, STAFF, seed_roles

pytestmark = [
    pytest.mark.every_backend,  # filters, counts, search: the database's queries
    pytest.mark.usefixtures("no_errors_in_chat"),
]

ORG_10 = "МАОУ «СОШ № 10» г. Челябинска"
ORG_20 = "МАОУ «СОШ № 20» г. Челябинска"


@pytest.fixture
async def school(seeded: None, session_factory: async_sessionmaker[AsyncSession]) -> None:
    await seed_roles(session_factory)


def payloads(message: Shown) -> list[str]:
    return [message.payload(label) for label in labels(message)]


def choice_label(message: Shown, name: str) -> str:
    """The button of a choice by the name it stands for: «2. МАОУ … · 3»."""
    return next(
        label
        for label in labels(message)
        if re.fullmatch(rf"(• )?\d+\. {re.escape(name[:20])}.* · \d+", label)
    )


@pytest.mark.usefixtures("school")
async def test_staff_see_approved_applications_of_every_organisation(chat: Chat) -> None:
    menu = await chat.send(STAFF, "/menu")
    assert menu.text.endswith("роль «Сотрудник ЦОПМ / ГБУ ДПО «ЧИРО»».")
    assert menu.buttons()[0] == ["📥 Заявки (6 на включение)"]
    listing = await chat.press(STAFF, "📥 Заявки (6 на включение)")
    assert listing.text.split("\n")[:3] == [
        "📥 Заявки",
        "Статус: «Подтверждена руководителем ОО»",
        "Найдено: 6",
    ]
    assert numbers_on(listing) == APPROVED  # both organisations, newest first
    assert row_label(listing, 40003).startswith("№40003 · Кузнецова М. С. · Цифровая")
    assert row_label(listing, 40004) == "№40004 · Кузнецова М. С. · Не указано"
    assert listing.buttons()[6:] == [
        ["Не обработана", "• Подтверждена"],
        ["Отменена", "Включен в группу", "Все"],
        ["🏫 Организация", "📚 Программа"],
        ["🔍 Поиск"],
        ["📤 Выгрузить"],
        ["◀ В главное меню"],
    ]
    everything = await chat.press(STAFF, "Все")
    assert "Найдено: 19" in everything.text  # every application of both organisations

    found = await chat.send(STAFF, "кузнецова")
    assert "Найдено: 4" in found.text
    assert numbers_on(found) == [*APPROVED_20, OTHER_ORG_NUMBER]
    card = await chat.send(STAFF, "39738")
    assert card.text.startswith("Заявка №39738\nСтатус: Подтверждена руководителем ОО")
    assert card.buttons() == [
        ["👥 Включить в группу", "❌ Отменить"],
        ["💬 Комментарии", "🕓 История"],
        ["◀ К списку"],
    ]
    new = await chat.send(STAFF, str(NEWEST_NEW))
    assert new.buttons()[0] == ["❌ Отменить"]  # staff may cancel, not include, an unprocessed one


@pytest.mark.usefixtures("school")
async def test_staff_filter_by_organisation_and_by_programme(chat: Chat) -> None:
    listing = await open_list(chat, STAFF)
    organisations = await chat.press(STAFF, "🏫 Организация")
    assert organisations.message_id == listing.message_id
    assert organisations.text == (
        "🏫 Выбор организации\n"
        "Статус: «Подтверждена руководителем ОО»\n"
        "Организаций: 2\n\n"
        "Нажмите на номер организации — в списке останутся только её заявки.\n\n"
        f"1. {ORG_10} — 3 заявки\n\n"
        f"2. {ORG_20} — 3 заявки"
    )
    assert organisations.buttons() == [
        [f"1. {ORG_10} · 3"],
        [f"2. {ORG_20} · 3"],
        ["• Все организации"],
        ["◀ К списку"],
    ]
    # Ids in the buttons, never names.
    assert payloads(organisations)[:2] == ["af2:s:o:10", "af2:s:o:20"]  # ids, no names

    of_20 = await chat.press(STAFF, f"2. {ORG_20} · 3")
    assert of_20.text.split("\n")[:4] == [
        "📥 Заявки",
        "Статус: «Подтверждена руководителем ОО»",
        f"Организация: {ORG_20}",
        "Найдено: 3",
    ]
    assert numbers_on(of_20) == APPROVED_20
    assert ["• 🏫 Организация", "📚 Программа"] in of_20.buttons()

    programmes = await chat.press(STAFF, "📚 Программа")
    assert programmes.text.split("\n\n")[0].split("\n") == [
        "📚 Выбор программы",
        "Статус: «Подтверждена руководителем ОО»",
        f"Организация: {ORG_20}",
        "Программ: 3",
    ]
    assert programmes.text.split("\n\n")[2:] == [
        "1. Не указано — 1 заявка",
        f"2. {DIGITAL} — 1 заявка",
        f"3. {EXPERT} — 1 заявка",
    ]
    assert all(len(label) <= 60 for row in programmes.buttons() for label in row)
    assert all(len(data.encode()) <= 64 for data in payloads(programmes))
    expert = await chat.press(STAFF, choice_label(programmes, EXPERT))
    assert f"Организация: {ORG_20}\nПрограмма: {EXPERT}\nНайдено: 1" in expert.text
    assert numbers_on(expert) == [40002]

    # A card keeps the list it came from.
    await chat.press(STAFF, row_label(expert, 40002))
    back = await chat.press(STAFF, "◀ К списку")
    assert numbers_on(back) == [40002]
    assert f"Программа: {EXPERT}" in back.text

    # The organisations of this programme; the one chosen is marked.
    organisations = await chat.press(STAFF, "• 🏫 Организация")
    assert f"Программа: {EXPERT}\nОрганизаций: 2" in organisations.text
    assert organisations.buttons()[:3] == [
        [f"1. {ORG_10} · 1"],
        [f"• 2. {ORG_20} · 1"],
        ["Все организации"],
    ]
    by_programme = await chat.press(STAFF, "Все организации")
    assert "Организация:" not in by_programme.text
    assert numbers_on(by_programme) == [40002, 39738]  # the programme in both organisations

    # The status filter keeps the programme; «Все программы» drops it.
    everything = await chat.press(STAFF, "Все")
    assert f"Статус: все\nПрограмма: {EXPERT}\nНайдено: 2" in everything.text
    await chat.press(STAFF, "Подтверждена")
    programmes = await chat.press(STAFF, "• 📚 Программа")
    assert "Программ: 4" in programmes.text  # both organisations' again
    assert choice_label(programmes, EXPERT).startswith("• 4. Экспертная")
    unfiltered = await chat.press(STAFF, "Все программы")
    assert numbers_on(unfiltered) == APPROVED
    assert ["🏫 Организация", "📚 Программа"] in unfiltered.buttons()

    # The menu opens the list afresh, without the filters chosen before.
    await chat.press(STAFF, "🏫 Организация")
    await chat.press(STAFF, f"1. {ORG_10} · 3")
    assert numbers_on(await open_list(chat, STAFF)) == APPROVED


@pytest.mark.usefixtures("school")
async def test_search_within_an_organisation(chat: Chat) -> None:
    await open_list(chat, STAFF)
    await chat.press(STAFF, "🏫 Организация")
    await chat.press(STAFF, f"1. {ORG_10} · 3")
    await chat.press(STAFF, "🔍 Поиск")
    found = await chat.send(STAFF, "Войсковая")
    assert f"Статус: все\nОрганизация: {ORG_10}\nПоиск: «Войсковая»\nНайдено: 7" in found.text
    cleared = await chat.press(STAFF, "✖ Сбросить поиск")
    assert f"Организация: {ORG_10}\nНайдено: 15" in cleared.text


@pytest.mark.usefixtures("school")
async def test_staff_include_with_a_comment_and_cancel_after_a_confirmation(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    listing = await open_list(chat, STAFF)
    await chat.press(STAFF, row_label(listing, 39738))
    prompt = await chat.press(STAFF, "👥 Включить в группу")
    assert prompt.text.startswith(
        "Включение заявки №39738 в группу\nБайдуганова Александра Юрьевна"
    )
    assert (
        "Напишите комментарий для заявителя и руководителя ОО одним сообщением или нажмите "
        "«Без комментария»." in prompt.text
    )
    assert prompt.buttons() == [["Без комментария", "Отмена"]]
    assert await status_of(session_factory, 39738) == "approved"

    clock.advance(minutes=30)
    included = await chat.send(STAFF, "Группа Д-12, начало 06.09 в 10:00")
    assert_decided_with_a_comment(
        included,
        "👥 Заявка №39738 включена в группу. Заявитель и руководитель ОО получат уведомление "
        "с вашим комментарием.",
        "Включен в группу",
        "Иванова Ольга Николаевна (Сотрудник ЦОПМ / ГБУ ДПО «ЧИРО»), 01.09.2026 11:30",
        "Группа Д-12, начало 06.09 в 10:00",
    )
    [event] = await events_of(session_factory, 39738)
    assert (event.action, event.actor_account_id, event.actor_role) == ("include", 7, "staff")
    assert (event.from_status, event.to_status) == ("approved", "included")
    pushes = await outbox_of(session_factory, 39738)
    # The applicant (account 4) and both directors of organisation 10.
    assert sorted(p.account_id for p in pushes) == [1, 2, 4]
    assert {(p.kind, p.event_id) for p in pushes} == {("status_changed", event.id)}

    back = await chat.press(STAFF, "◀ К списку")
    assert numbers_on(back) == [a for a in APPROVED if a != 39738]
    await chat.press(STAFF, row_label(back, 40003))
    confirm = await chat.press(STAFF, "❌ Отменить")
    assert confirm.text.startswith(
        "Отменить заявку №40003? Заявитель и руководитель ОО получат уведомление.\n\n"
        "Кузнецова Мария Сергеевна · Цифровая"
    )
    assert confirm.buttons() == [["Да, отменить", "Нет"]]
    assert await status_of(session_factory, 40003) == "approved"
    reason = await chat.press(STAFF, "Да, отменить")
    assert "Напишите причину отмены для заявителя и руководителя ОО" in reason.text
    cancelled = await chat.send(STAFF, "Программа не проводится в этом году")
    assert cancelled.text.startswith("❌ Заявка №40003 отменена. Заявитель и руководитель ОО")
    assert "Статус: Отменена" in cancelled.text
    [event] = await events_of(session_factory, 40003)
    assert (event.action, event.comment) == ("cancel", "Программа не проводится в этом году")
    pushes = await outbox_of(session_factory, 40003)
    assert sorted(p.account_id for p in pushes) == [5, 6]  # organisation 20's director, applicant

    await chat.press(STAFF, "◀ К списку")
    menu = await chat.send(STAFF, "/menu")
    assert menu.buttons()[0] == ["📥 Заявки (4 на включение)"]


@pytest.mark.usefixtures("school")
async def test_staff_include_without_a_comment(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    card = await chat.send(STAFF, "40002")
    await chat.press_on(card, "👥 Включить в группу")
    included = await chat.press_on(card, "Без комментария")
    assert chat.answer() == chat.toast("Заявка включена в группу")
    assert included.text.startswith(
        "👥 Заявка №40002 включена в группу. Заявитель и руководитель ОО получат уведомление.\n"
    )
    [event] = await events_of(session_factory, 40002)
    assert (event.action, event.comment) == ("include", None)
    assert sorted(p.account_id for p in await outbox_of(session_factory, 40002)) == [5, 6]


@pytest.mark.usefixtures("school_unchanged")
async def test_forged_presses_are_refused_and_change_nothing(chat: Chat) -> None:
    listing = await open_list(chat, STAFF)

    NOT_STAFFS = "Действие «Одобрить» — для роли «Руководитель ОО»; у вас такой роли нет"
    for data, reason in [
        (
            forged(AppAction.INCLUDE_NO_COMMENT, NEWEST_NEW),
            "Заявку №39737 нельзя включить в группу: статус «Не обработана»",
        ),
        (
            forged(AppAction.INCLUDE, 39744),
            "Заявка №39744 уже обработана: статус «Включен в группу»",
        ),
        (
            forged(AppAction.CANCEL_NO_COMMENT, 39742, StatusCode.CANCELLED),
            "Заявка №39742 уже обработана: статус «Отменена»",
        ),
        (forged(AppAction.OPEN, 1), "Заявка №1 не найдена или недоступна вам."),
        # Not staff's decision at all: said plainly.
        (forged(AppAction.APPROVE_NO_COMMENT, NEWEST_NEW, StatusCode.NEW), NOT_STAFFS),
        (forged(AppAction.APPROVE, NEWEST_NEW), NOT_STAFFS),
    ]:
        await chat.press_data(STAFF, data, listing.message_id)
        assert chat.answer() == chat.alert(reason), data

    def facet(kind: Facet, choice: int) -> str:
        return FacetIntent(action=FacetAction.SET, facet=kind, choice=choice).pack()

    await chat.press_data(STAFF, facet(Facet.ORGANIZATION, 999), listing.message_id)
    assert chat.answer() == chat.alert("Организация не найдена, выберите другую.")
    await chat.press_data(STAFF, facet(Facet.PROGRAM, 1), listing.message_id)
    assert chat.answer() == chat.alert(
        "Программа не найдена: заявки по ней больше нет, выберите другую."
    )
    chooser = chat.message(STAFF, listing.message_id)
    assert chooser.text.startswith("📚 Выбор программы")  # shown again to choose from
    # Staff's buttons pressed by a director and by an applicant: not theirs.
    for user in (DIRECTOR, LISTENER):
        menu = await chat.send(user, "/menu")
        await chat.press_data(user, facet(Facet.ORGANIZATION, 20), menu.message_id)
        assert chat.answer() == chat.alert(STALE)
        include = forged(AppAction.INCLUDE_NO_COMMENT, 39739, StatusCode.APPROVED)
        await chat.press_data(user, include, menu.message_id)
        assert chat.answer() == chat.alert(
            "Действие «Включить в группу» — для роли «Сотрудник ЦОПМ / ГБУ ДПО «ЧИРО»»; у "
            "вас такой роли нет"
        )
