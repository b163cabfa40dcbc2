"""The buttons a director presses in the workloads of bench.updates and bench.process: their
callback data as the bot draws them."""

from __future__ import annotations

from bot.conversation.intents import (
    AppAction,
    AppIntent,
    ListIntent,
    MenuAction,
    MenuIntent,
    StatusCode,
)

APPLICATIONS = MenuIntent(action=MenuAction.APPLICATIONS).pack()  # the menu's «📥 Заявки»
NEXT_PAGE = ListIntent(page=1).pack()  # the list's next page


def card(number: int) -> AppIntent:
    """The card of a new application: `.pack()` opens it, `.to(action).pack()` is a button."""
    return AppIntent(action=AppAction.OPEN, number=number, status=StatusCode.NEW)
