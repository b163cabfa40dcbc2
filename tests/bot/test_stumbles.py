"""What a director, a teacher and staff stumbled on (issue 15), in each messenger through the
real front end and its double: a push's buttons in another role, a prompt that stopped being
active, free text by role, messages the bot does not read, own applications, the consent gate."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.conversation.intents import AppAction, AppIntent, StatusCode
from bot.max.front import MaxFront
from bot.screens.screen import Screen
from services.applications import perform_action
from services.clock import ManualClock
from services.domain import Action, Actor, Role
from services.outbox import OutboxWorker
from storage.repositories import Repositories
from tests import factories
from tests.bot.test_pushes import add_application
from tests.chats import Chat, MaxChat, Shown, labels
from tests.director_data import (
    DIRECTOR,
    LISTENER,
    NEWEST_NEW,
    events_of,
    seed_applications,
    snapshot,
    status_of,
    unchanged,
)

SECOND = Actor(2, "Сидорова Анна Ивановна", Role.DIRECTOR, frozenset({Role.DIRECTOR}), 10)
APPLICANT = Actor(3, "Войсковая Юлия Олеговна", Role.LISTENER, frozenset({Role.LISTENER}), 10)
OWN = 39800  # an application of the director (account 1, also a listener) himself


@pytest.fixture
async def school(seeded: None, session_factory: async_sessionmaker[AsyncSession]) -> None:
    await seed_applications(session_factory)


@pytest.fixture
def notifier(chat: Chat) -> OutboxWorker[Screen]:
    return chat.notifier()


async def become(chat: Chat, user: int, role_label: str) -> Shown:
    """The person switches the active role through «👤 Профиль» as he would."""
    await chat.send(user, "/profile")
    await chat.press(user, "🔁 Сменить роль")
    return await chat.press(user, role_label)


# --- 1. a push's buttons in another role ----------------------------------------------------


@pytest.mark.usefixtures("seeded")
async def test_a_push_pressed_in_another_role_acts_in_the_role_it_was_sent_for(
    chat: Chat, notifier: OutboxWorker[Screen], clock: ManualClock
) -> None:
    """The director, now «Слушатель», presses «✅ Одобрить» on a new-application push: the role
    switches back to «Руководитель ОО», he is told so, and the approval goes through."""
    await add_application(chat.session_factory, clock, number=39900)
    await notifier.drain()
    [push] = chat.bot_messages(DIRECTOR)
    await become(chat, DIRECTOR, "Слушатель")
    await chat.press(DIRECTOR, "✅ Одобрить", push.message_id)
    assert chat.answer() == chat.toast(
        "Роль переключена: «Руководитель ОО» — кнопка относится к ней"
    )
    prompt = chat.message(DIRECTOR, push.message_id)
    assert prompt.text.startswith("Одобрение заявки №39900")
    await chat.press(DIRECTOR, "Без комментария", push.message_id)
    done = chat.message(DIRECTOR, push.message_id)
    assert done.text.startswith("✅ Заявка №39900 одобрена.")
    assert await status_of(chat.session_factory, 39900) == "approved"
    menu = await chat.send(DIRECTOR, "/menu")
    assert "роль «Руководитель ОО»" in menu.text
    chat.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_a_press_no_role_of_the_person_may_take_says_which_role_is_needed(
    chat: Chat,
) -> None:
    """An applicant pressing a director's decision on her own application is told plainly that
    the action belongs to another role, not that the button is stale."""
    card = await chat.send(LISTENER, str(NEWEST_NEW))
    forged = AppIntent(action=AppAction.APPROVE, number=NEWEST_NEW, status=StatusCode.NEW)
    async with unchanged(chat.session_factory):
        await chat.press_data(LISTENER, forged.pack(), card.message_id)
        assert chat.answer() == chat.alert(
            "Действие «Одобрить» — для роли «Руководитель ОО»; у вас такой роли нет"
        )
    chat.assert_no_errors()


# --- 5. a director and his own application --------------------------------------------------


async def add_own(session_factory: async_sessionmaker[AsyncSession]) -> None:
    await factories.store(session_factory, factories.application(OWN, 1, 10, "new"))


OWN_REASON = (
    f"Заявку №{OWN} подали вы сами: руководитель не принимает решение по своей заявке — её "
    "рассмотрят сотрудники ЦОПМ / ГБУ ДПО «ЧИРО»"
)


@pytest.mark.usefixtures("school")
async def test_a_director_does_not_decide_his_own_application(chat: Chat) -> None:
    await add_own(chat.session_factory)
    card = await chat.send(DIRECTOR, str(OWN))
    assert card.text.startswith(f"Заявка №{OWN}")
    assert "✅ Одобрить" not in labels(card)
    assert "❌ Отменить" not in labels(card)
    async with unchanged(chat.session_factory):
        for action in (
            AppAction.APPROVE,
            AppAction.APPROVE_NO_COMMENT,
            AppAction.CANCEL_NO_COMMENT,
        ):
            forged = AppIntent(action=action, number=OWN, status=StatusCode.NEW)
            await chat.press_data(DIRECTOR, forged.pack(), card.message_id)
            assert chat.answer() == chat.alert(OWN_REASON)
    assert await status_of(chat.session_factory, OWN) == "new"
    # The other director of the school decides it as usual.
    await chat.send(1002, str(OWN))
    await chat.press(1002, "✅ Одобрить")
    done = await chat.press(1002, "Без комментария")
    assert done.text.startswith(f"✅ Заявка №{OWN} одобрена.")
    chat.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_a_director_in_the_listener_role_is_told_why_a_push_cannot_approve_his_own(
    chat: Chat,
) -> None:
    await add_own(chat.session_factory)
    await become(chat, DIRECTOR, "Слушатель")
    card = await chat.send(DIRECTOR, str(OWN))
    assert "❌ Отменить" in labels(card)  # as the applicant he may withdraw it
    forged = AppIntent(action=AppAction.APPROVE, number=OWN)
    await chat.press_data(DIRECTOR, forged.pack(), card.message_id)
    assert chat.answer() == chat.alert(OWN_REASON)
    assert await status_of(chat.session_factory, OWN) == "new"
    chat.assert_no_errors()


@pytest.mark.usefixtures("seeded")
async def test_where_the_rules_allow_it_a_director_decides_his_own(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await seed_applications(session_factory)
    await add_own(session_factory)
    async with chat.another(DIRECTOR_DECIDES_OWN=True) as bot:
        await bot.send(DIRECTOR, str(OWN))
        await bot.press(DIRECTOR, "✅ Одобрить")
        done = await bot.press(DIRECTOR, "Без комментария")
        assert done.text.startswith(f"✅ Заявка №{OWN} одобрена.")
        [event] = await events_of(session_factory, OWN)
        assert (event.actor_account_id, event.action) == (1, "approve")
        bot.assert_no_errors()


# --- 4. every message gets an answer --------------------------------------------------------


@pytest.mark.usefixtures("school")
async def test_every_message_gets_a_short_answer_and_the_way_to_the_menu(
    chat: Chat,
) -> None:
    for user in (DIRECTOR, LISTENER, 1007):
        for text in ("/export", "/settings"):
            before = len(chat.history(user))
            reply = await chat.send(user, text)
            assert len(chat.history(user)) == before + 2, text  # the message and one answer
            assert reply.text.startswith("Такой команды нет."), text
            assert reply.buttons() == [["◀ В главное меню"]]
        for kind in ("photo", "voice", "sticker", "document"):
            before = len(chat.history(user))
            reply = await chat.send_media(user, kind)
            assert len(chat.history(user)) == before + 2, kind
            assert "бот не читает" in reply.text, kind
            assert reply.buttons() == [["◀ В главное меню"]]
        menu = await chat.press(user, "◀ В главное меню")
        assert menu.text.startswith("Главное меню")
    # Inside an input the photo is answered by what the input waits for.
    await chat.send(DIRECTOR, str(NEWEST_NEW))
    await chat.press(DIRECTOR, "✅ Одобрить")
    reply = await chat.send_media(DIRECTOR, "photo")
    assert reply.text == "Отправьте текст одним сообщением или нажмите «Отмена» (/cancel)."
    chat.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_menu_is_in_the_command_list_of_every_role(chat: Chat) -> None:
    if isinstance(chat, MaxChat):  # one list for the bot, set as the front end starts
        front = MaxFront(chat.settings, chat.runner, chat.harness.client)
        assert (await front.start()).username == chat.harness.api.bot_username
    for user, role in ((DIRECTOR, "Слушатель"), (DIRECTOR, "Руководитель ОО")):
        await become(chat, user, role)
        assert (chat.commands(user) or [])[:1] == ["menu"]
        reply = await chat.send(user, "/menu")
        assert reply.text.startswith("Главное меню")
    chat.assert_no_errors()


# --- 2. a prompt that stops being active ----------------------------------------------------


@pytest.mark.usefixtures("school")
async def test_a_left_prompt_says_so_and_a_late_comment_can_still_decide(
    chat: Chat,
) -> None:
    """«✅ Одобрить», then /menu, then «Согласовано»: the old prompt says it is no longer
    active; the text is not a search, the director is told and approves with it in one tap."""
    card = await chat.send(DIRECTOR, str(NEWEST_NEW))
    prompt = await chat.press_on(card, "✅ Одобрить")
    assert prompt.text.startswith(f"Одобрение заявки №{NEWEST_NEW}")
    await chat.send(DIRECTOR, "/menu")
    closed = chat.message(DIRECTOR, prompt.message_id)
    assert closed.text == (
        "⌛ Этот запрос больше не активен: вы открыли другой экран. Решение по заявке "
        f"№{NEWEST_NEW} не принято, заявка не изменена."
    )
    assert closed.buttons() == [[f"Открыть заявку №{NEWEST_NEW}"], ["◀ В главное меню"]]
    async with unchanged(chat.session_factory):  # nothing done yet
        late = await chat.send(DIRECTOR, "Согласовано")
        assert "По этому запросу" not in late.text
        assert late.text.startswith(
            "Это сообщение пришло, когда запрос комментария к одобрению к заявке "
            f"№{NEWEST_NEW} уже закрылся"
        )
        assert "Ваш текст: «Согласовано»" in late.text
        assert late.buttons() == [
            ["✅ Одобрить с этим комментарием"],
            [f"Открыть заявку №{NEWEST_NEW}"],
            ["🔍 Искать заявки по этому тексту"],
            ["◀ В главное меню"],
        ]

    use = late.payload("✅ Одобрить с этим комментарием")
    done = await chat.press(DIRECTOR, "✅ Одобрить с этим комментарием")
    assert done.message_id == late.message_id
    assert done.text.startswith(f"✅ Заявка №{NEWEST_NEW} одобрена.")
    [event] = await events_of(chat.session_factory, NEWEST_NEW)
    assert (event.action, event.comment) == ("approve", "Согласовано")
    # The kept text is used once: pressing again changes nothing more.
    await chat.press_data(DIRECTOR, use, late.message_id)
    assert chat.answer() == chat.alert("Этот текст уже не сохранён: отправьте его ещё раз.")
    assert len(await events_of(chat.session_factory, NEWEST_NEW)) == 1
    chat.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_a_late_text_may_still_be_a_search_and_only_the_next_text_is_asked_about(
    chat: Chat,
) -> None:
    card = await chat.send(DIRECTOR, str(NEWEST_NEW))
    await chat.press_on(card, "💬 Комментарии")
    prompt = await chat.press(DIRECTOR, "✍️ Написать комментарий")
    menu = await chat.send(DIRECTOR, "/menu")
    assert chat.message(DIRECTOR, prompt.message_id).text.startswith(
        "⌛ Этот запрос больше не активен"
    )
    late = await chat.send(DIRECTOR, "Войсковая")
    assert "запрос комментария к заявке" in late.text
    listing = await chat.press(DIRECTOR, "🔍 Искать заявки по этому тексту")
    assert "Поиск: «Войсковая»" in listing.text
    # The next text is a search again, and it says so.
    again = await chat.send(DIRECTOR, "Войсковая")
    assert again.text.startswith("🔍 Ищу заявки по вашему сообщению")
    assert "Поиск: «Войсковая»" in again.text
    assert menu.text.startswith("Главное меню")
    chat.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_a_search_prompt_left_says_so(chat: Chat) -> None:
    menu = await chat.send(DIRECTOR, "/menu")
    await chat.press(DIRECTOR, menu.buttons()[0][0])
    prompt = await chat.press(DIRECTOR, "🔍 Поиск")
    await chat.send(DIRECTOR, "/help")
    closed = chat.message(DIRECTOR, prompt.message_id)
    assert closed.text == "⌛ Этот запрос поиска больше не активен: вы открыли другой экран."
    assert closed.buttons() == [["◀ К списку"], ["◀ В главное меню"]]
    chat.assert_no_errors()


# --- 3. free text by role -------------------------------------------------------------------


@pytest.mark.usefixtures("school")
async def test_an_applicants_free_text_is_offered_as_a_comment_on_her_application(
    chat: Chat,
) -> None:
    offer = await chat.send(LISTENER, "Когда начнётся обучение?")
    assert "Поиск" not in offer.text
    assert offer.text.startswith("Ваш текст: «Когда начнётся обучение?»")
    assert "Отправить его комментарием к заявке?" in offer.text
    rows = offer.buttons()
    assert rows[-1] == ["◀ В главное меню"]
    assert len(rows) == 6  # her 5 newest of 7, and the menu
    assert "Показаны 5 последних заявок из 7" in offer.text
    [row] = [row for row in rows if f"№{NEWEST_NEW} " in row[0]]
    assert row[0].startswith("💬 ")
    before = await snapshot(chat.session_factory)
    sent = await chat.press(LISTENER, row[0])
    assert sent.message_id == offer.message_id
    assert "Когда начнётся обучение?" in sent.text  # the comments thread, with it
    [event] = await events_of(chat.session_factory, NEWEST_NEW)
    assert (event.action, event.comment, event.actor_account_id) == (
        "comment",
        "Когда начнётся обучение?",
        3,
    )
    after = await snapshot(chat.session_factory)
    assert after.outbox > before.outbox  # the directors are told
    chat.assert_no_errors()


@pytest.mark.usefixtures("seeded")
async def test_an_applicant_without_applications_is_told_so(chat: Chat) -> None:
    reply = await chat.send(LISTENER, "Когда начнётся обучение?")
    assert reply.text.startswith("У вас пока нет заявок")
    assert reply.buttons() == [["◀ В главное меню"]]
    chat.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_a_directors_and_staffs_free_text_is_a_search_that_says_so(
    chat: Chat,
) -> None:
    for user in (DIRECTOR, 1007):
        reply = await chat.send(user, "Когда начнётся обучение?")
        assert reply.text.startswith("🔍 Ищу заявки по вашему сообщению")
        assert "Поиск: «Когда начнётся обучение?»" in reply.text
    chat.assert_no_errors()


# --- 12. «🚪 Выйти» in the profile ----------------------------------------------------------


@pytest.mark.usefixtures("school")
async def test_logout_from_the_profile_asks_first(chat: Chat) -> None:
    profile = await chat.send(LISTENER, "/profile")
    assert profile.buttons() == [["🔁 Сменить роль"], ["🚪 Выйти"], ["◀ В главное меню"]]
    question = await chat.press(LISTENER, "🚪 Выйти")
    assert question.message_id == profile.message_id
    assert question.text.startswith(
        f"Отвязать {chat.name} от учётной записи Войсковая Юлия Олеговна?"
    )
    kept = await chat.press(LISTENER, "Отмена")
    assert kept.text == f"Хорошо, {chat.name} остаётся привязанным."
    await chat.send(LISTENER, "/profile")
    await chat.press(LISTENER, "🚪 Выйти")
    done = await chat.press(LISTENER, "Да, отвязать")
    assert done.text.startswith(f"{chat.name} отвязан от учётной записи")
    after = await chat.send(LISTENER, "/menu")
    assert after.text.startswith(f"Сначала привяжите {chat.name}")
    chat.assert_no_errors()


# --- 11. muted is held, not lost --------------------------------------------------------------


@pytest.mark.usefixtures("school")
async def test_unmuting_sums_up_what_changed_meanwhile(
    chat: Chat, notifier: OutboxWorker[Screen], clock: ManualClock
) -> None:
    clock.advance(minutes=30)  # after the seeded applications arrived
    await chat.send(DIRECTOR, "/menu")
    await chat.press(DIRECTOR, "🔔 Уведомления")
    await chat.press(DIRECTOR, "🔕 Выключить уведомления")
    clock.advance(minutes=5)
    # Meanwhile: two new applications, a decision by the other director, a comment.
    await add_application(chat.session_factory, clock, number=39901, created_at=clock.now())
    await add_application(chat.session_factory, clock, number=39902, created_at=clock.now())
    async with chat.session_factory() as session:
        repo = Repositories(session)
        await perform_action(repo, SECOND, 39736, Action.APPROVE, clock=clock)
        await perform_action(repo, APPLICANT, 39737, Action.COMMENT, comment="Вопрос", clock=clock)
        await session.commit()
    await notifier.drain()
    pushes_before = len(chat.bot_messages(DIRECTOR))
    assert all("Новая заявка" not in m.text for m in chat.bot_messages(DIRECTOR))

    before = len(chat.history(DIRECTOR))
    await chat.press(DIRECTOR, "🔔 Включить уведомления")
    [summary] = chat.history(DIRECTOR)[before:]
    assert summary.text.splitlines() == [
        "Пока уведомления были выключены (с 01.09.2026 11:30):",
        "• новых заявок: 2",
        "• изменений статуса: 1",
        "• новых комментариев: 1",
        "",
        "Открыть список:",
    ]
    assert summary.buttons() == [["📥 Не обработана"], ["📄 Все заявки"], ["◀ В главное меню"]]
    listing = await chat.press(DIRECTOR, "📥 Не обработана", summary.message_id)
    assert "Статус: «Не обработана»" in listing.text
    assert len(chat.bot_messages(DIRECTOR)) == pushes_before + 1
    chat.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_unmuting_when_nothing_changed_says_so(chat: Chat, clock: ManualClock) -> None:
    clock.advance(minutes=30)
    await chat.send(LISTENER, "/menu")
    await chat.press(LISTENER, "🔔 Уведомления")
    await chat.press(LISTENER, "🔕 Выключить уведомления")
    clock.advance(hours=1)
    before = len(chat.history(LISTENER))
    await chat.press(LISTENER, "🔔 Включить уведомления")
    [summary] = chat.history(LISTENER)[before:]
    assert summary.text == (
        "Пока уведомления были выключены (с 01.09.2026 11:30), по вашим заявкам ничего не "
        "изменилось."
    )
    chat.assert_no_errors()
