"""Keyboards as pure functions of data."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot import texts
from bot.callbacks import MenuAction, MenuCb
from services.domain import Role


def button(text: str, data: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data.pack())


def main_menu(role: Role, count: int) -> InlineKeyboardMarkup:
    """The main menu of the active role; `count` is what waits for the user."""
    if role is Role.DIRECTOR:
        applications = texts.MENU_APPLICATIONS_DIRECTOR.format(count=count)
    elif role is Role.STAFF:
        applications = texts.MENU_APPLICATIONS_STAFF.format(count=count)
    else:
        applications = texts.MENU_APPLICATIONS_LISTENER
    rows = [
        (applications, MenuAction.APPLICATIONS),
        (texts.MENU_NOTIFICATIONS, MenuAction.NOTIFICATIONS),
        (texts.MENU_PROFILE, MenuAction.PROFILE),
        (texts.MENU_HELP, MenuAction.HELP),
    ]
    return InlineKeyboardMarkup(
        inline_keyboard=[[button(label, MenuCb(action=action))] for label, action in rows]
    )


def back_to_menu() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[button(texts.MENU_BACK, MenuCb(action=MenuAction.HOME))]]
    )
