"""Typed callback data: short prefixes, Enum actions, integer ids; never names or Russian text
(Telegram allows 64 bytes). Every press is authorised again on the server: buttons can be forged."""

from __future__ import annotations

from enum import StrEnum

from aiogram.filters.callback_data import CallbackData

from services.domain import Role


class MenuAction(StrEnum):
    HOME = "h"
    APPLICATIONS = "a"
    NOTIFICATIONS = "n"
    PROFILE = "p"
    HELP = "q"


class MenuCb(CallbackData, prefix="m"):
    action: MenuAction


class LinkAction(StrEnum):
    SWITCH = "sw"  # switch to the account of a redeemed token
    KEEP = "kp"  # keep the current account
    LOGOUT = "lo"  # /logout confirmed
    STAY = "st"  # /logout cancelled


class LinkCb(CallbackData, prefix="l"):
    """Linking decisions; `token` is the id of the link token row to switch to (0: none)."""

    action: LinkAction
    token: int = 0


class ConsentAction(StrEnum):
    ACCEPT = "ok"


class ConsentCb(CallbackData, prefix="c"):
    action: ConsentAction


class ProfileAction(StrEnum):
    ROLES = "r"  # list the account's roles
    SET_ROLE = "s"  # make `role` active


class ProfileCb(CallbackData, prefix="p"):
    action: ProfileAction
    role: Role | None = None


class AppAction(StrEnum):
    OPEN = "o"
    APPROVE = "ap"
    CANCEL = "c"
    INCLUDE = "in"
    COMMENTS = "cm"
    ADD_COMMENT = "ac"
    HISTORY = "h"


class AppCb(CallbackData, prefix="a"):
    """An action on one application; `page` is the page of a paginated view (history)."""

    action: AppAction
    number: int
    page: int = 0
