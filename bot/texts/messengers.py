"""The messengers' names, for the texts that name the messenger the person writes in:
«привяжите {messenger} к учётной записи» reads «Telegram» in Telegram and «MAX» in MAX."""

from __future__ import annotations

NAMES: dict[str, str] = {
    "telegram": "Telegram",
    "max": "MAX",
}


def messenger_name(messenger: str) -> str:
    """The name of a messenger by its code (Peer.messenger, a history row's source)."""
    return NAMES.get(messenger, messenger)


def say(text: str, messenger: str, **values: object) -> str:
    """A catalogue text with `{messenger}` (and its other fields) filled in."""
    return text.format(messenger=messenger_name(messenger), **values)
