"""The applicant's («Слушатель») workflow in each messenger, through the real front end and its
double:
«📄 Мои заявки», the card, comments to the directors, cancelling an own application after a
confirmation with or without a reason, refusals, the deep link."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.conversation.intents import AppAction, StatusCode
from services.applications import perform_action
from services.clock import ManualClock
from services.domain import Action, Actor, Role
from storage.repositories import Repositories
from tests.chats import Chat, Shown, assert_decided_with_a_comment, numbers_on, open_card, row_label
from tests.director_data import (
    DIRECTOR,
    LISTENER,
    OTHER_ORG_NUMBER,
    events_of,
    forged,
    outbox_of,
    status_of,
)
from tests.roles_data import OWN, OWN_NUMBERS, SOMEONE_ELSES, seed_roles

pytestmark = pytest.mark.usefixtures("no_errors_in_chat")

DIRECTORS_OF_10 = [1, 2]


@pytest.fixture
async def school(seeded: None, session_factory: async_sessionmaker[AsyncSession]) -> None:
    await seed_roles(session_factory)


async def my_applications(chat: Chat) -> Shown:
    menu = await chat.send(LISTENER, "/menu")
    assert menu.buttons()[0] == ["📄 Мои заявки"]
    return await chat.press(LISTENER, "📄 Мои заявки")


@pytest.mark.usefixtures("school")
async def test_applicant_lists_only_own_applications(chat: Chat) -> None:
    listing = await my_applications(chat)
    assert listing.text.split("\n")[:4] == [
        "📄 Мои заявки",
        "Статус: все",
        "Найдено: 7",
        "Страница 1 из 2",
    ]
    assert "Нажмите на заявку, чтобы открыть её сведения, комментарии и историю." in listing.text
    assert numbers_on(listing) == OWN_NUMBERS[:6]  # newest first, every status
    # Her own list: the status instead of her name on every row.
    assert row_label(listing, 39743).startswith("👥 №39743 · Диагностика личностно")
    assert row_label(listing, 39737).startswith("🆕 №39737 · Диагностика")
    assert listing.buttons()[6:] == [
        ["1/2", "▶"],
        ["Не обработана", "Подтверждена"],
        ["Отменена", "Включен в группу", "• Все"],
        ["◀ В главное меню"],
    ]
    second = await chat.press(LISTENER, "▶")
    assert numbers_on(second) == OWN_NUMBERS[6:]

    for label, status in [
        ("Не обработана", "new"),
        ("Подтверждена", "approved"),
        ("Отменена", "cancelled"),
        ("Включен в группу", "included"),
    ]:
        filtered = await chat.press(LISTENER, label)
        assert filtered.message_id == listing.message_id  # one message, edited in place
        assert numbers_on(filtered) == OWN[status]

    # Another applicant's application or another organisation's is not hers to see.
    for number in (SOMEONE_ELSES, OTHER_ORG_NUMBER):
        nothing = await chat.send(LISTENER, str(number))
        assert nothing.text == f"Заявка №{number} не найдена или недоступна вам."
    card = await chat.send(LISTENER, "39739")
    assert card.text.startswith("Заявка №39739\nСтатус: Подтверждена руководителем ОО")


@pytest.mark.usefixtures("school")
async def test_applicant_opens_a_card_and_writes_to_the_directors(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    card = await open_card(chat, LISTENER, 39737)
    assert card.text.startswith("Заявка №39737\nСтатус: Не обработана")
    assert "Заявитель: Войсковая Юлия Олеговна" in card.text
    assert card.buttons() == [["❌ Отменить"], ["💬 Комментарии", "🕓 История"], ["◀ К списку"]]

    thread = await chat.press(LISTENER, "💬 Комментарии")
    assert thread.buttons() == [["✍️ Написать комментарий"], ["◀ К заявке"]]
    prompt = await chat.press(LISTENER, "✍️ Написать комментарий")
    assert "Напишите комментарий одним сообщением — его получит руководитель ОО." in prompt.text
    thread = await chat.send(LISTENER, "Прошу подтвердить: участвую в диагностике")
    assert thread.text.startswith("💬 Комментарий к заявке №39737 отправлен руководителю ОО.")
    assert "Войсковая Юлия Олеговна (Слушатель)" in thread.text

    assert await status_of(session_factory, 39737) == "new"
    [event] = await events_of(session_factory, 39737)
    assert (event.action, event.actor_account_id, event.actor_role) == ("comment", 3, "listener")
    pushes = await outbox_of(session_factory, 39737)
    assert [(p.account_id, p.kind, p.event_id) for p in pushes] == [
        (director, "comment", event.id) for director in DIRECTORS_OF_10
    ]

    history = await chat.press_on(await chat.press(LISTENER, "◀ К заявке"), "🕓 История")
    assert "Войсковая Юлия Олеговна (Слушатель)" in history.text
    assert "Комментарий: Прошу подтвердить: участвую в диагностике" in history.text
    back = await chat.press(LISTENER, "◀ К заявке")
    back = await chat.press(LISTENER, "◀ К списку")
    assert back.text.startswith("📄 Мои заявки\nСтатус: все")


@pytest.mark.usefixtures("school")
async def test_applicant_cancels_a_new_application_with_a_reason(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    card = await open_card(chat, LISTENER, 39737)
    confirm = await chat.press(LISTENER, "❌ Отменить")
    assert confirm.message_id == card.message_id
    assert confirm.text.startswith(
        "Отменить заявку №39737? Руководитель ОО получит уведомление.\n\nВойсковая Юлия Олеговна"
    )
    assert confirm.buttons() == [["Да, отменить", "Нет"]]
    kept = await chat.press(LISTENER, "Нет")  # back to the card, nothing changed
    assert kept.text.startswith("Заявка №39737\nСтатус: Не обработана")
    assert await status_of(session_factory, 39737) == "new"

    await chat.press(LISTENER, "❌ Отменить")
    prompt = await chat.press(LISTENER, "Да, отменить")
    assert "Напишите причину отмены для руководителя ОО одним сообщением" in prompt.text
    assert prompt.buttons() == [["Без комментария", "Отмена"]]
    assert await status_of(session_factory, 39737) == "new"

    clock.advance(minutes=7)
    cancelled = await chat.send(LISTENER, "Записалась по ошибке")
    assert chat.message(LISTENER, prompt.message_id).deleted
    assert_decided_with_a_comment(
        cancelled,
        "❌ Заявка №39737 отменена. Руководитель ОО получит уведомление с вашим комментарием.",
        "Отменена",
        "Войсковая Юлия Олеговна (Слушатель), 01.09.2026 11:07",
        "Записалась по ошибке",
    )

    assert await status_of(session_factory, 39737) == "cancelled"
    [event] = await events_of(session_factory, 39737)
    assert (event.action, event.from_status, event.to_status) == ("cancel", "new", "cancelled")
    assert (event.actor_account_id, event.actor_role, event.comment) == (
        3,
        "listener",
        "Записалась по ошибке",
    )
    pushes = await outbox_of(session_factory, 39737)
    assert [(p.account_id, p.kind, p.event_id) for p in pushes] == [
        (director, "status_changed", event.id) for director in DIRECTORS_OF_10
    ]


@pytest.mark.usefixtures("school")
async def test_applicant_cancels_an_approved_application_without_a_reason(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    card = await open_card(chat, LISTENER, 39739)
    assert card.text.startswith("Заявка №39739\nСтатус: Подтверждена руководителем ОО")
    assert card.buttons()[0] == ["❌ Отменить"]
    await chat.press(LISTENER, "❌ Отменить")
    await chat.press(LISTENER, "Да, отменить")
    cancelled = await chat.press(LISTENER, "Без комментария")
    assert chat.answer() == chat.toast("Заявка отменена")
    assert cancelled.text.startswith(
        "❌ Заявка №39739 отменена. Руководитель ОО получит уведомление.\n"
    )
    assert "Комментарий:" not in cancelled.text
    assert await status_of(session_factory, 39739) == "cancelled"
    [event] = await events_of(session_factory, 39739)
    assert (event.from_status, event.comment) == ("approved", None)
    pushes = await outbox_of(session_factory, 39739)
    # The directors, and staff (7), for whom the approved application was waiting.
    assert sorted(p.account_id for p in pushes) == [*DIRECTORS_OF_10, 7]
    assert {p.event_id for p in pushes} == {event.id}


@pytest.mark.usefixtures("school")
async def test_a_confirmation_gone_stale_shows_what_changed(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    card = await open_card(chat, LISTENER, 39737)
    await chat.press(LISTENER, "❌ Отменить")
    director = Actor(1, "Петров Пётр Петрович", Role.DIRECTOR, frozenset(Role), 10)
    async with session_factory() as session:
        await perform_action(Repositories(session), director, 39737, Action.APPROVE, clock=clock)
        await session.commit()
    redrawn = await chat.press_on(card, "Да, отменить")
    changed = (
        "ℹ️ Статус заявки изменился: было «Не обработана», теперь «Подтверждена руководителем ОО»."
    )
    assert chat.answer() == chat.alert(changed)
    assert redrawn.text.startswith(changed + "\n\nЗаявка №39737")
    assert redrawn.buttons()[0] == [
        "❌ Отменить"
    ]  # an approved application is still hers to cancel
    assert await status_of(session_factory, 39737) == "approved"


@pytest.mark.usefixtures("school_unchanged")
async def test_applicant_is_refused_what_is_not_hers_to_do(chat: Chat) -> None:
    for number, status in [(39741, "Отменена"), (39743, "Включен в группу")]:
        card = await open_card(chat, LISTENER, number)
        assert f"Статус: {status}" in card.text
        assert card.buttons() == [["💬 Комментарии", "🕓 История"], ["◀ К списку"]]

    # Processed applications of her own: refused with the status, the card shown as it is.
    for action in (AppAction.CANCEL, AppAction.CANCEL_CONFIRMED, AppAction.CANCEL_NO_COMMENT):
        await chat.press_data(LISTENER, forged(action, 39743), card.message_id)
        assert chat.answer() == chat.alert(
            "Заявка №39743 уже обработана: статус «Включен в группу»"
        )
    await chat.press_data(
        LISTENER,
        forged(AppAction.CANCEL_NO_COMMENT, 39741, StatusCode.CANCELLED),
        card.message_id,
    )
    assert chat.answer() == chat.alert("Заявка №39741 уже обработана: статус «Отменена»")
    # Someone else's applications, of her organisation or another: not hers to see.
    for number in (SOMEONE_ELSES, OTHER_ORG_NUMBER):
        for action in (AppAction.OPEN, AppAction.CANCEL_NO_COMMENT, AppAction.ADD_COMMENT):
            await chat.press_data(LISTENER, forged(action, number), card.message_id)
            assert chat.answer() == chat.alert(f"Заявка №{number} не найдена или недоступна вам.")
    # The director's and staff's decisions on her own new application: not an applicant's.
    for action, label in (
        (AppAction.APPROVE, "Одобрить» — для роли «Руководитель ОО"),
        (AppAction.APPROVE_NO_COMMENT, "Одобрить» — для роли «Руководитель ОО"),
        (
            AppAction.INCLUDE_NO_COMMENT,
            "Включить в группу» — для роли «Сотрудник ЦОПМ / ГБУ ДПО «ЧИРО»",
        ),
    ):
        await chat.press_data(LISTENER, forged(action, 39737, StatusCode.NEW), card.message_id)
        assert chat.answer() == chat.alert(f"Действие «{label}»; у вас такой роли нет")
    refused = await chat.start(LISTENER, f"app_{SOMEONE_ELSES}")
    assert refused.text == "Заявка №39738 не найдена или недоступна вам."


@pytest.mark.usefixtures("school")
async def test_deep_link_opens_the_applicants_own_card(chat: Chat) -> None:
    card = await chat.start(LISTENER, "app_39735")
    assert card.text.startswith("Заявка №39735\nСтатус: Не обработана")
    assert card.buttons()[0] == ["❌ Отменить"]
    back = await chat.press(LISTENER, "◀ К списку")
    assert back.text.startswith("📄 Мои заявки\nСтатус: все\nНайдено: 7")
    # The same link for the director of her organisation opens it with his decisions.
    director = await chat.start(DIRECTOR, "app_39735")
    assert director.buttons()[0] == ["✅ Одобрить", "❌ Отменить"]
