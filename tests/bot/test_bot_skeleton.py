"""The bot skeleton in each messenger, through the real front end and its double."""

from __future__ import annotations

import pytest

from bot.conversation.intents import MenuAction, MenuIntent
from bot.conversation.turn import Turn
from bot.screens.screen import Button, Screen
from tests.chats import Chat, MaxChat

STRANGER = 2000  # not linked to anything


async def test_start_and_help_for_an_unlinked_user(chat: Chat) -> None:
    reply = await chat.start(STRANGER)
    assert reply.text.startswith("Здравствуйте!")
    assert f"привяжите {chat.name} к своей учётной записи" in reply.text
    assert "10 мин" in reply.text  # LINK_TOKEN_TTL defaults to 600 s
    if isinstance(chat, MaxChat):
        assert reply.raw.format == "html"  # MAX's own markup, not Telegram's
    reply = await chat.send(STRANGER, "/help")
    assert reply.text.startswith("Помощь")
    assert "<b>" not in reply.text  # rendered, not shown
    reply = await chat.send(STRANGER, "покажи заявки")
    assert f"Сначала привяжите {chat.name}" in reply.text
    chat.assert_no_errors()


@pytest.mark.usefixtures("seeded")
async def test_linked_director_gets_the_main_menu_with_the_count(chat: Chat) -> None:
    reply = await chat.start(1001)
    assert "Вы вошли как Петров Пётр Петрович, роль «Руководитель ОО»" in reply.text
    assert reply.buttons()[0] == ["📥 Заявки (0 новых)"]
    chat.assert_no_errors()


async def test_a_failure_is_told_without_internals(chat: Chat) -> None:
    async def boom(turn: Turn) -> None:
        raise RuntimeError("secret internals")

    chat.runner.conversation = boom
    button = Button("Нажми", MenuIntent(MenuAction.HOME))
    message = await chat.show(STRANGER, Screen("x", ((button,),)))
    await chat.press(STRANGER, "Нажми", message.message_id)
    assert chat.answer() == chat.alert("Что-то пошло не так, попробуйте ещё раз.")
    reply = await chat.send(STRANGER, "привет")
    assert reply.text == "Что-то пошло не так, попробуйте ещё раз."
    assert len(chat.harness.errors.records) == 2
    assert "secret internals" not in str(chat.harness.api.calls)
