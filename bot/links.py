"""Deep links: how a person opens the bot in a messenger with a start payload (a link token).

Services never build a messenger's links: the process wiring makes one builder per configured
messenger (Telegram: the bot's @username from getMe; MAX: MAX_BOT_USERNAME, or the name from
MAX's `GET /me`) and hands them to
whoever shows a link (the integration API, the command line).
"""

from __future__ import annotations

from collections.abc import Callable

from bot.settings import Settings

LinkBuilder = Callable[[str], str]  # a start payload → the link that opens the bot with it


def telegram_link(bot_username: str) -> LinkBuilder:
    """`https://t.me/<bot>?start=<payload>`."""
    return lambda payload: f"https://t.me/{bot_username}?start={payload}"


def max_link(bot_name: str) -> LinkBuilder:
    """`https://max.ru/<bot>?start=<payload>` (MAX's payload: at most 128 characters)."""
    return lambda payload: f"https://max.ru/{bot_name}?start={payload}"


def deep_links(
    settings: Settings, telegram_username: str | None, max_username: str | None = None
) -> dict[str, LinkBuilder]:
    """A builder per configured messenger, by messenger: Telegram when its bot's username is
    known, MAX when MAX_BOT_USERNAME is set or, unset, the name MAX's `GET /me` answered
    (`max_username`)."""
    builders: dict[str, LinkBuilder] = {}
    if telegram_username:
        builders["telegram"] = telegram_link(telegram_username)
    max_name = settings.MAX_BOT_USERNAME or max_username
    if max_name:
        builders["max"] = max_link(max_name)
    return builders
