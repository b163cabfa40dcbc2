"""Neutral screens as MAX messages: MAX's `html` text format and an `inline_keyboard`.

Text: the shared markup (bot/screens/markup.py: `<b>`, `<i>`, `<a href>`, entities) is parsed
and written again with MAX's own tags for the same marks (MAX's "HTML support" list: `b`, `i`,
`a`; `strong`, `em`… are the same marks), only `&`, `<` and `>` escaped in text (MAX documents
no other entity) and line breaks kept as they are. A tag MAX does not know (none of the
catalogue's, but a Telegram-only one would be) keeps its text and loses the tag, as MAX itself
would do. What comes out is never longer than what went in, so a screen within TEXT_LIMIT
(4,000 UTF-16 units) stays within MAX's 4,000 characters.

Keyboard: a button with an intent is a `callback` button with the intent's payload (at most
64 bytes, far below MAX's 1,024); a link is a `link` button; a page the Telegram front end
opens as a Mini App is a `link` button here (MAX's `open_app` opens only a mini app registered
to a bot, not a URL). The neutral screen already keeps MAX's limits (30 rows, 7 a row, 3 a row
with links, 210 buttons). Edits and press answers always carry the keyboard, `[]` for none:
MAX replaces the attachments with what an edit sends.
"""

from __future__ import annotations

from html import escape
from html.parser import HTMLParser
from typing import Any

from bot.conversation.intents import encode
from bot.screens.screen import Button, Screen

JsonDict = dict[str, Any]

TEXT_FORMAT = "html"
TAGS = {"b": "b", "strong": "b", "i": "i", "em": "i", "a": "a"}


class _ToMax(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.out.append("\n")
            return
        mark = TAGS.get(tag)
        if mark is None:
            return
        if mark == "a":
            href = dict(attrs).get("href") or ""
            self.out.append(f'<a href="{escape(href, quote=True)}">')
        else:
            self.out.append(f"<{mark}>")
        self.open.append(mark)

    def handle_endtag(self, tag: str) -> None:
        mark = TAGS.get(tag)
        if mark is not None and mark in self.open:
            while self.open:
                closing = self.open.pop()
                self.out.append(f"</{closing}>")
                if closing == mark:
                    break

    def handle_data(self, data: str) -> None:
        self.out.append(escape(data, quote=False))

    def result(self) -> str:
        self.close()
        while self.open:
            self.out.append(f"</{self.open.pop()}>")
        return "".join(self.out)


def max_text(markup: str) -> str:
    """The shared markup in MAX's `html` format."""
    parser = _ToMax()
    parser.feed(markup)
    return parser.result()


def button(source: Button) -> JsonDict:
    if source.intent is not None:
        return {"type": "callback", "text": source.label, "payload": encode(source.intent)}
    url = source.url if source.url is not None else source.app_url
    return {"type": "link", "text": source.label, "url": url}


def keyboard(screen: Screen) -> list[JsonDict]:
    """The message's attachments: the inline keyboard, or none."""
    if not screen.rows:
        return []
    rows = [[button(b) for b in row] for row in screen.rows]
    return [{"type": "inline_keyboard", "payload": {"buttons": rows}}]


def body(screen: Screen) -> JsonDict:
    """A NewMessageBody for POST/PUT /messages and POST /answers; `attachments` always set, so
    an edit replaces the keyboard (or removes it) rather than keeping the old one."""
    return {"text": max_text(screen.text), "format": TEXT_FORMAT, "attachments": keyboard(screen)}


def file_body(caption: str, token: str) -> JsonDict:
    """A NewMessageBody carrying an uploaded file (`token`, from POST /uploads) with the plain
    `caption` as its text. The file is the message's only attachment (MAX's schema: a file
    "MUST be the only attachment in message"), so no keyboard goes with it."""
    return {
        "text": escape(caption, quote=False),
        "format": TEXT_FORMAT,
        "attachments": [{"type": "file", "payload": {"token": token}}],
    }
