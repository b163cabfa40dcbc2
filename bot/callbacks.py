"""Typed callback data: short prefixes, Enum actions, integer ids; never names or Russian text
(Telegram allows 64 bytes). Every press is authorised again on the server: buttons can be forged."""

from __future__ import annotations

from enum import StrEnum

from aiogram.filters.callback_data import CallbackData


class MenuAction(StrEnum):
    HOME = "h"
    APPLICATIONS = "a"
    NOTIFICATIONS = "n"
    PROFILE = "p"
    HELP = "q"


class MenuCb(CallbackData, prefix="m"):
    action: MenuAction


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


class NotifyAction(StrEnum):
    MUTE = "m"
    UNMUTE = "u"
    DIGEST_OFF = "d0"
    DIGEST_ON = "d1"


class NotifyCb(CallbackData, prefix="nt"):
    """A setting of «🔔 Уведомления»; each action sets a state, so a repeated press is harmless."""

    action: NotifyAction
