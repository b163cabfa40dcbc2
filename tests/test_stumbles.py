"""What a director, a teacher and staff stumbled on (issue 15), through the real Dispatcher and
the Bot API double: a push's buttons in another role, a prompt that stopped being active, free
text by role, messages the bot does not read, own applications, the consent gate."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.conversation.intents import AppAction, AppIntent, StatusCode
from bot.screens.screen import Screen
from services.clock import ManualClock
from services.outbox import OutboxWorker
from tests import factories
from tests.director_data import (
    DIRECTOR,
    LISTENER,
    NEWEST_NEW,
    events_of,
    seed_applications,
    snapshot,
    status_of,
)
from tests.fakes.bot_api import FakeBotAPI, Message
from tests.harness import BotHarness, test_settings
from tests.test_director import last_answer
from tests.test_pushes import add_application, bot_messages, notifier_for

OWN = 39800  # an application of the director (account 1, also a listener) himself


@pytest.fixture
async def school(seeded: None, session_factory: async_sessionmaker[AsyncSession]) -> None:
    await seed_applications(session_factory)


@pytest.fixture
def notifier(harness: BotHarness, clock: ManualClock) -> OutboxWorker[Screen]:
    return notifier_for(harness, clock)


async def become(harness: BotHarness, user: int, role_label: str) -> Message:
    """The person switches the active role through «👤 Профиль» as he would."""
    await harness.send(user, "/profile")
    await harness.press(user, "🔁 Сменить роль")
    return await harness.press(user, role_label)


def labels(message: Message) -> list[str]:
    return [label for row in message.buttons() for label in row]


# --- 1. a push's buttons in another role ----------------------------------------------------


@pytest.mark.usefixtures("seeded")
async def test_a_push_pressed_in_another_role_acts_in_the_role_it_was_sent_for(
    harness: BotHarness, notifier: OutboxWorker[Screen], clock: ManualClock
) -> None:
    """The director, now «Слушатель», presses «✅ Одобрить» on a new-application push: the role
    switches back to «Руководитель ОО», he is told so, and the approval goes through."""
    await add_application(harness.session_factory, clock, number=39900)
    await notifier.drain()
    [push] = bot_messages(harness.api, DIRECTOR)
    await become(harness, DIRECTOR, "Слушатель")
    await harness.press(DIRECTOR, "✅ Одобрить", push.message_id)
    assert last_answer(harness) == {
        "text": "Роль переключена: «Руководитель ОО» — кнопка относится к ней"
    }
    prompt = harness.api.message(DIRECTOR, push.message_id)
    assert prompt.text.startswith("Одобрение заявки №39900")
    await harness.press(DIRECTOR, "Без комментария", push.message_id)
    done = harness.api.message(DIRECTOR, push.message_id)
    assert done.text.startswith("✅ Заявка №39900 одобрена.")
    assert await status_of(harness.session_factory, 39900) == "approved"
    menu = await harness.send(DIRECTOR, "/menu")
    assert "роль «Руководитель ОО»" in menu.text
    harness.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_a_press_no_role_of_the_person_may_take_says_which_role_is_needed(
    harness: BotHarness,
) -> None:
    """An applicant pressing a director's decision on her own application is told plainly that
    the action belongs to another role, not that the button is stale."""
    card = await harness.send(LISTENER, str(NEWEST_NEW))
    forged = AppIntent(action=AppAction.APPROVE, number=NEWEST_NEW, status=StatusCode.NEW)
    before = await snapshot(harness.session_factory)
    await harness.press_data(LISTENER, forged.pack(), card.message_id)
    answer = last_answer(harness)
    assert answer["show_alert"] is True
    assert "недоступно для роли «Слушатель»" in str(answer["text"])
    assert "устарела" not in str(answer["text"])
    assert await snapshot(harness.session_factory) == before
    harness.assert_no_errors()


# --- 5. a director and his own application --------------------------------------------------


async def add_own(session_factory: async_sessionmaker[AsyncSession]) -> None:
    async with session_factory() as session:
        session.add(factories.application(OWN, 1, 10, "new"))
        await session.commit()


OWN_REASON = (
    f"Заявку №{OWN} подали вы сами: руководитель не принимает решение по своей заявке — её "
    "рассмотрят сотрудники ЦОПМ / ГБУ ДПО «ЧИРО»"
)


@pytest.mark.usefixtures("school")
async def test_a_director_does_not_decide_his_own_application(harness: BotHarness) -> None:
    await add_own(harness.session_factory)
    card = await harness.send(DIRECTOR, str(OWN))
    assert card.text.startswith(f"Заявка №{OWN}")
    assert "✅ Одобрить" not in labels(card)
    assert "❌ Отменить" not in labels(card)
    before = await snapshot(harness.session_factory)
    for action in (AppAction.APPROVE, AppAction.APPROVE_NO_COMMENT, AppAction.CANCEL_NO_COMMENT):
        forged = AppIntent(action=action, number=OWN, status=StatusCode.NEW)
        await harness.press_data(DIRECTOR, forged.pack(), card.message_id)
        assert last_answer(harness) == {"text": OWN_REASON, "show_alert": True}
    assert await snapshot(harness.session_factory) == before
    assert await status_of(harness.session_factory, OWN) == "new"
    # The other director of the school decides it as usual.
    await harness.send(1002, str(OWN))
    await harness.press(1002, "✅ Одобрить")
    done = await harness.press(1002, "Без комментария")
    assert done.text.startswith(f"✅ Заявка №{OWN} одобрена.")
    harness.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_a_director_in_the_listener_role_is_told_why_a_push_cannot_approve_his_own(
    harness: BotHarness,
) -> None:
    await add_own(harness.session_factory)
    await become(harness, DIRECTOR, "Слушатель")
    card = await harness.send(DIRECTOR, str(OWN))
    assert "❌ Отменить" in labels(card)  # as the applicant he may withdraw it
    forged = AppIntent(action=AppAction.APPROVE, number=OWN)
    await harness.press_data(DIRECTOR, forged.pack(), card.message_id)
    assert last_answer(harness) == {"text": OWN_REASON, "show_alert": True}
    assert await status_of(harness.session_factory, OWN) == "new"
    harness.assert_no_errors()


@pytest.mark.usefixtures("seeded")
async def test_where_the_rules_allow_it_a_director_decides_his_own(
    api: FakeBotAPI,
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> None:
    await seed_applications(session_factory)
    await add_own(session_factory)
    settings = test_settings(api, database_url, DIRECTOR_DECIDES_OWN=True)
    harness = BotHarness(api, settings, session_factory, clock)
    try:
        await harness.send(DIRECTOR, str(OWN))
        await harness.press(DIRECTOR, "✅ Одобрить")
        done = await harness.press(DIRECTOR, "Без комментария")
        assert done.text.startswith(f"✅ Заявка №{OWN} одобрена.")
        [event] = await events_of(session_factory, OWN)
        assert (event.actor_account_id, event.action) == (1, "approve")
        harness.assert_no_errors()
    finally:
        await harness.close()


# --- 4. every message gets an answer --------------------------------------------------------


@pytest.mark.usefixtures("school")
async def test_every_message_gets_a_short_answer_and_the_way_to_the_menu(
    harness: BotHarness,
) -> None:
    for user in (DIRECTOR, LISTENER, 1007):
        for text in ("/export", "/settings"):
            before = len(harness.api.chat(user))
            reply = await harness.send(user, text)
            assert len(harness.api.chat(user)) == before + 2, text  # the message and one answer
            assert reply.text.startswith("Такой команды нет."), text
            assert reply.buttons() == [["◀ В главное меню"]]
        for kind in ("photo", "voice", "sticker", "document"):
            before = len(harness.api.chat(user))
            reply = await harness.send_media(user, kind)
            assert len(harness.api.chat(user)) == before + 2, kind
            assert "бот не читает" in reply.text, kind
            assert reply.buttons() == [["◀ В главное меню"]]
        menu = await harness.press(user, "◀ В главное меню")
        assert menu.text.startswith("Главное меню")
    # Inside an input the photo is answered by what the input waits for.
    await harness.send(DIRECTOR, str(NEWEST_NEW))
    await harness.press(DIRECTOR, "✅ Одобрить")
    reply = await harness.send_media(DIRECTOR, "photo")
    assert reply.text == "Отправьте текст одним сообщением или нажмите «Отмена» (/cancel)."
    harness.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_menu_is_in_the_command_list_of_every_role(harness: BotHarness) -> None:
    for user, role in ((DIRECTOR, "Слушатель"), (DIRECTOR, "Руководитель ОО")):
        await become(harness, user, role)
        commands = harness.api.commands_for({"type": "chat", "chat_id": user})
        assert commands is not None
        assert commands[0]["command"] == "menu"
        reply = await harness.send(user, "/menu")
        assert reply.text.startswith("Главное меню")
    harness.assert_no_errors()
