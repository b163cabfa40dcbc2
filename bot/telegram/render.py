"""Neutral screens as Telegram messages: the shared markup is Telegram's HTML as it is; buttons
become an inline keyboard (callback_data is the intent's payload, a page to open inside
Telegram a Mini App button).

A screen is sent and edited with `SendScreen` and `EditScreen`: aiogram's sendMessage and
editMessageText whose keyboard is the Bot API's JSON, serialised once (`markup`), and whose
answer is left as JSON. aiogram's own would build a pydantic model of every button to serialise
it again, and parse the message Telegram echoes back, keyboard included, into dozens of models
nobody reads: about half of the Bot API client's time for a screen (docs/BENCHMARKS.md). Given a
dict, aiogram's session would walk it value by value (`prepare_value`) before serialising it
the same way.
"""

from __future__ import annotations

from typing import Any, cast

from aiogram import Bot
from aiogram.methods import EditMessageText, SendMessage

from bot.conversation.intents import encode
from bot.screens.screen import Button, Screen

JsonDict = dict[str, Any]


class SendScreen(SendMessage):
    """sendMessage with a keyboard as serialised JSON (`markup`); the answer is the message as
    JSON."""

    __returning__ = JsonDict  # type: ignore[assignment]

    reply_markup: str | None = None  # type: ignore[assignment]


class EditScreen(EditMessageText):
    """editMessageText with a keyboard as serialised JSON; the answer is the message as JSON
    (or true)."""

    __returning__ = JsonDict | bool

    reply_markup: str | None = None  # type: ignore[assignment]


async def send_screen(bot: Bot, chat_id: int, screen: Screen) -> int:
    """Send the screen to the chat; the new message's id."""
    answer = await bot(
        SendScreen(chat_id=chat_id, text=screen.text, reply_markup=markup(bot, screen))
    )
    return int(cast(JsonDict, answer)["message_id"])


def markup(bot: Bot, screen: Screen) -> str | None:
    """The screen's keyboard serialised as the bot's session serialises a request's JSON
    values; None without buttons."""
    found = keyboard(screen)
    return bot.session.json_dumps(found) if found is not None else None


def keyboard(screen: Screen) -> JsonDict | None:
    """The screen's buttons as an InlineKeyboardMarkup in the Bot API's JSON; None without."""
    if not screen.rows:
        return None
    return {"inline_keyboard": [[button(b) for b in row] for row in screen.rows]}


def button(source: Button) -> JsonDict:
    if source.intent is not None:
        return {"text": source.label, "callback_data": encode(source.intent)}
    if source.app_url is not None:
        return {"text": source.label, "web_app": {"url": source.app_url}}
    return {"text": source.label, "url": source.url}
