"""A messenger-neutral screen: a text in the shared markup (bot/screens/markup.py) and rows of
buttons, each carrying a typed intent, a link, or a page to open inside the messenger.

A front end draws it its own way (Telegram: an inline keyboard; MAX: an `inline_keyboard`
attachment) and, when a button is pressed, gives its intent back to the conversation layer.
Screens stay within both messengers' limits: TEXT_LIMIT of text, buttons within the smaller of
the keyboards' limits (MAX: 30 rows, 7 buttons a row, 3 a row for links), payloads within 64
bytes (bot/conversation/intents.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.conversation.intents import Intent
from bot.screens.markup import TEXT_LIMIT, length

MAX_ROWS = 30
MAX_PER_ROW = 7
MAX_LINKS_PER_ROW = 3
MAX_BUTTONS = 210


@dataclass(frozen=True)
class Button:
    """A button: exactly one of `intent` (pressed: back to the bot), `url` (a link opened in
    the browser) and `app_url` (a page opened inside the messenger, as a mini app)."""

    label: str
    intent: Intent | None = None
    url: str | None = None
    app_url: str | None = None

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.intent, self.url, self.app_url)) != 1:
            raise ValueError(f"button {self.label!r} needs exactly one of intent, url, app_url")

    @property
    def is_link(self) -> bool:
        return self.intent is None


Row = tuple[Button, ...]


@dataclass(frozen=True)
class Screen:
    text: str
    rows: tuple[Row, ...] = ()

    def __post_init__(self) -> None:
        problems = limits_problems(self)
        if problems:
            raise ValueError("; ".join(problems))

    def buttons(self) -> list[Button]:
        return [button for row in self.rows for button in row]


def limits_problems(screen: Screen) -> list[str]:
    """What in the screen would be refused by one of the messengers."""
    problems = []
    if length(screen.text) > TEXT_LIMIT:
        problems.append(f"text of {length(screen.text)} units is over {TEXT_LIMIT}")
    if not screen.text.strip():
        problems.append("empty text")
    if len(screen.rows) > MAX_ROWS:
        problems.append(f"{len(screen.rows)} rows of buttons, over {MAX_ROWS}")
    if sum(len(row) for row in screen.rows) > MAX_BUTTONS:
        problems.append(f"over {MAX_BUTTONS} buttons")
    for row in screen.rows:
        if not row or len(row) > MAX_PER_ROW:
            problems.append(f"a row of {len(row)} buttons")
        if sum(button.is_link for button in row) > MAX_LINKS_PER_ROW:
            problems.append(f"a row of more than {MAX_LINKS_PER_ROW} links")
    return problems


def rows(*buttons: Button) -> tuple[Row, ...]:
    """One button a row."""
    return tuple((button,) for button in buttons)
