"""Neutral screens as Telegram messages: the shared markup is Telegram's HTML as it is; buttons
become an inline keyboard (callback_data is the intent's payload, a page to open inside
Telegram a Mini App button)."""

from __future__ import annotations

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, WebAppInfo

from bot.conversation.intents import encode
from bot.screens.screen import Button, Screen


def keyboard(screen: Screen) -> InlineKeyboardMarkup | None:
    if not screen.rows:
        return None
    return InlineKeyboardMarkup(inline_keyboard=[[button(b) for b in row] for row in screen.rows])


def button(source: Button) -> InlineKeyboardButton:
    if source.intent is not None:
        return InlineKeyboardButton(text=source.label, callback_data=encode(source.intent))
    if source.app_url is not None:
        return InlineKeyboardButton(text=source.label, web_app=WebAppInfo(url=source.app_url))
    return InlineKeyboardButton(text=source.label, url=source.url)
