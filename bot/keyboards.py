"""Keyboards as pure functions of data."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot import texts
from bot.callbacks import (
    ConsentAction,
    ConsentCb,
    LinkAction,
    LinkCb,
    MenuAction,
    MenuCb,
    ProfileAction,
    ProfileCb,
)
from bot.texts import linking as link_texts
from services.domain import Role


def button(text: str, data: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data.pack())


def single_column(*buttons: InlineKeyboardButton) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[b] for b in buttons])


def sign_in(url: str) -> InlineKeyboardMarkup:
    """The bot-first sign-in: opens the service's page, which goes on to Gosuslugi."""
    return single_column(InlineKeyboardButton(text=link_texts.SIGN_IN_BUTTON, url=url))


def consent() -> InlineKeyboardMarkup:
    return single_column(button(link_texts.CONSENT_ACCEPT, ConsentCb(action=ConsentAction.ACCEPT)))


def switch_account(token_id: int) -> InlineKeyboardMarkup:
    return single_column(
        button(link_texts.SWITCH_CONFIRM, LinkCb(action=LinkAction.SWITCH, token=token_id)),
        button(link_texts.SWITCH_CANCEL, LinkCb(action=LinkAction.KEEP, token=token_id)),
    )


def logout() -> InlineKeyboardMarkup:
    return single_column(
        button(link_texts.LOGOUT_CONFIRM, LinkCb(action=LinkAction.LOGOUT)),
        button(link_texts.LOGOUT_CANCEL, LinkCb(action=LinkAction.STAY)),
    )


def profile() -> InlineKeyboardMarkup:
    return single_column(
        button(link_texts.PROFILE_SWITCH_ROLE, ProfileCb(action=ProfileAction.ROLES)),
        button(texts.MENU_BACK, MenuCb(action=MenuAction.HOME)),
    )


def roles(available: frozenset[Role], active: Role) -> InlineKeyboardMarkup:
    """One button per role of the account, in the order of the Role enum; the active one ticked."""
    rows = [
        button(
            (link_texts.ROLE_CURRENT_MARK if role is active else "") + role.label,
            ProfileCb(action=ProfileAction.SET_ROLE, role=role),
        )
        for role in Role
        if role in available
    ]
    return single_column(*rows, button(texts.MENU_BACK, MenuCb(action=MenuAction.HOME)))


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
