"""The bot skeleton through the real Dispatcher and the Bot API double."""

from __future__ import annotations

import pytest
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.conversation.turn import Turn
from tests.harness import BotHarness


async def test_start_and_help_for_an_unlinked_user(harness: BotHarness) -> None:
    reply = await harness.send(2000, "/start")
    assert "привяжите Telegram к своей учётной записи" in reply.text
    assert "10 мин" in reply.text  # LINK_TOKEN_TTL defaults to 600 s
    reply = await harness.send(2000, "/help")
    assert reply.text.startswith("Помощь")
    reply = await harness.send(2000, "покажи заявки")
    assert "Сначала привяжите Telegram" in reply.text
    harness.assert_no_errors()


@pytest.mark.usefixtures("seeded")
async def test_linked_director_gets_the_main_menu_with_the_count(harness: BotHarness) -> None:
    reply = await harness.send(1001, "/start")
    assert "Вы вошли как Петров Пётр Петрович, роль «Руководитель ОО»" in reply.text
    assert reply.buttons()[0] == ["📥 Заявки (0 новых)"]
    harness.assert_no_errors()


async def test_a_failure_is_told_without_internals(harness: BotHarness) -> None:
    async def boom(turn: Turn) -> None:
        raise RuntimeError("secret internals")

    harness.dp["runner"].conversation = boom
    message = await harness.bot.send_message(
        2000,
        "x",
        reply_markup=InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="Нажми", callback_data="boom")]]
        ),
    )
    await harness.press(2000, "Нажми", message.message_id)
    answer = harness.api.calls_of("answerCallbackQuery")[-1].params
    assert answer["text"] == "Что-то пошло не так, попробуйте ещё раз."
    assert answer["show_alert"] is True
    reply = await harness.send(2000, "привет")
    assert reply.text == "Что-то пошло не так, попробуйте ещё раз."
    assert len(harness.errors.records) == 2
    assert "secret internals" not in str(harness.api.calls)
