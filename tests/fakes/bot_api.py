"""A Telegram Bot API test double: an aiohttp server on 127.0.0.1 standing in for api.telegram.org.

Point a real aiogram ``Bot`` at it and the bot talks HTTP to a server that answers with
Telegram's response shapes, HTTP status codes and error descriptions, while the test acts as
users (``send_text``, ``press``, ``block``) and inspects what happened (``chat``, ``calls``,
``unanswered_callbacks``)::

    async with FakeBotAPI() as api:
        api.add_user(42)
        session = AiohttpSession(api=TelegramAPIServer.from_base(api.url))
        bot = Bot(api.token, session=session, default=DefaultBotProperties(parse_mode="HTML"))
        api.send_text(42, "/start")
        ...  # run polling against the fake, or feed api.take_updates() to a Dispatcher
        assert api.last_bot_message(42).buttons() == [["Да", "Нет"]]
        api.press(42, "Да")

Scope and deliberate simplifications:

* private chats only: a user's chat id equals the user id; text messages only;
* implemented methods: getMe, getUpdates, sendMessage, editMessageText, editMessageReplyMarkup,
  answerCallbackQuery, deleteMessage, setMyCommands, deleteMyCommands, getMyCommands,
  setWebhook, deleteWebhook, getWebhookInfo, setChatMenuButton, setMyDescription,
  setMyShortDescription. Anything else answers 404 "Not Found", like Telegram does for unknown
  methods;
* text limits are counted as Telegram counts them, in UTF-16 code units after entity parsing
  (a text of 4096 characters with one emoji beyond the BMP is refused);
* ``parse_mode="HTML"`` is parsed with Telegram's rules (entities, error texts with byte
  offsets); Markdown modes are accepted but the text is stored verbatim;
* setWebhook accepts ``http://`` URLs (Telegram demands HTTPS) so tests can receive updates on
  127.0.0.1; updates are pushed only when the test calls ``deliver_webhook``; so do ``web_app``
  buttons, for the same reason;
* a Mini App opened from a ``web_app`` button (``open_web_app``) gets the URL a Telegram client
  would open: launch data signed with the bot token in the fragment, as documented at
  core.telegram.org/bots/webapps ("Validating data received via the Mini App");
* time: ``clock`` (monotonic seconds) drives rate limiting and ``Call.time``; ``wall_clock``
  (Unix seconds) gives message dates. Long-poll and response delays use real time.

Several processes sharing one fake can be told apart: point each at ``api.url_for(name)``
(``{url}/{name}``, e.g. ``TELEGRAM_API_URL``) and its requests are recorded with
``Call.via == name``. ``observe(callback)`` calls back with every recorded call, so a test can
wait for a reply without polling.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
import inspect
import json
import math
import re
import secrets
import string
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, urlencode

from aiohttp import (
    BodyPartReader,
    ClientError,
    ClientResponse,
    ClientSession,
    ClientTimeout,
    MultipartReader,
    web,
)

from tests.fakes.server import RecordingServer

__all__ = ["Call", "FakeBotAPI", "Message", "parse_html"]

JsonDict = dict[str, Any]

# --------------------------------------------------------------------------------------------
# Error descriptions, verbatim as the Bot API sends them
# --------------------------------------------------------------------------------------------

UNAUTHORIZED = "Unauthorized"
NOT_FOUND = "Not Found"
CHAT_ID_EMPTY = "Bad Request: chat_id is empty"
CHAT_NOT_FOUND = "Bad Request: chat not found"
BOT_BLOCKED = "Forbidden: bot was blocked by the user"
TEXT_EMPTY = "Bad Request: message text is empty"
TEXT_TOO_LONG = "Bad Request: message is too long"
EDIT_TEXT_TOO_LONG = "Bad Request: MESSAGE_TOO_LONG"
CANT_PARSE_ENTITIES = "Bad Request: can't parse entities: "
UNSUPPORTED_PARSE_MODE = "Bad Request: unsupported parse_mode"
ENTITIES_UNPARSABLE = "Bad Request: can't parse entities JSON object"
MARKUP_UNPARSABLE = "Bad Request: can't parse reply keyboard markup JSON object"
MARKUP_NOT_OBJECT = "Bad Request: object expected as reply markup"
INLINE_KEYBOARD_EXPECTED = "Bad Request: inline keyboard expected"
TEXT_BUTTONS_UNALLOWED = "Bad Request: text buttons are unallowed in the inline keyboard"
BUTTON_DATA_INVALID = "Bad Request: BUTTON_DATA_INVALID"
BUTTON_URL_INVALID = "Bad Request: BUTTON_URL_INVALID"
REPLY_NOT_FOUND = "Bad Request: message to be replied not found"
MESSAGE_ID_INVALID = "Bad Request: MESSAGE_ID_INVALID"
EDIT_NOT_FOUND = "Bad Request: message to edit not found"
CANT_BE_EDITED = "Bad Request: message can't be edited"
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
DELETE_NOT_FOUND = "Bad Request: message to delete not found"
QUERY_INVALID = "Bad Request: query is too old and response timeout expired or query ID is invalid"
ANSWER_TOO_LONG = "Bad Request: MESSAGE_TOO_LONG"
COMMANDS_UNPARSABLE = "Bad Request: can't parse commands JSON object"
BOT_COMMAND_INVALID = "Bad Request: BOT_COMMAND_INVALID"
COMMAND_DESCRIPTION_EMPTY = "Bad Request: command description must be non-empty"
WEBHOOK_URL_INVALID = "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
SECRET_TOKEN_INVALID = "Bad Request: secret token contains unallowed characters"
WEBHOOK_ACTIVE = (
    "Conflict: can't use getUpdates method while webhook is active; "
    "use deleteWebhook to delete the webhook first"
)
POLL_TERMINATED = (
    "Conflict: terminated by other getUpdates request; "
    "make sure that only one bot instance is running"
)

SECRET_TOKEN_HEADER = "X-Telegram-Bot-Api-Secret-Token"

# Telegram counts text lengths in UTF-16 code units (an emoji beyond the BMP counts 2), as it
# counts entity offsets.
MAX_TEXT_LENGTH = 4096
MAX_CALLBACK_DATA_BYTES = 64
MAX_CALLBACK_ANSWER_LENGTH = 200

# Update types Telegram sends when allowed_updates is not specified (or is an empty list).
_NOT_SENT_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})

_DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Request Entity Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


class _ApiError(Exception):
    """A failed Bot API call: becomes ``{"ok": false, ...}`` with status ``error_code``."""

    def __init__(self, error_code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after

    def payload(self) -> JsonDict:
        body: JsonDict = {
            "ok": False,
            "error_code": self.error_code,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def _bad_request(description: str) -> _ApiError:
    return _ApiError(400, description)


def _too_many_requests(retry_after: int) -> _ApiError:
    return _ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after)


# --------------------------------------------------------------------------------------------
# Text: Telegram's HTML parse mode, UTF-16 offsets, bot_command entities
# --------------------------------------------------------------------------------------------

_HTML_TAGS = frozenset(
    {"a", "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler"}
    | {"tg-emoji", "code", "pre", "blockquote"}
)
_SIMPLE_ENTITY_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
}
_NAMED_CHARACTER_REFERENCES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_BOT_COMMAND_RE = re.compile(r"(?<![\w/@])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/@])")


def utf16_length(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, the unit of Telegram's entity offsets and of its
    length limits (4096 for a message's text, 200 for a callback answer)."""
    return len(text.encode("utf-16-le")) // 2


def _decode_character_reference(source: str, pos: int) -> tuple[str, int] | None:
    """Decode the ``&...`` at ``source[pos]`` the way Telegram does.

    Returns the character and the index just after the reference, or None when Telegram
    would keep the ampersand literally (unknown name, bad number). The ``;`` is optional.
    """
    end = pos + 1
    if source.startswith("#", end):
        end += 1
        hexadecimal = source.startswith("x", end)
        if hexadecimal:
            end += 1
        digits = string.hexdigits if hexadecimal else string.digits
        first_digit = end
        while end < len(source) and source[end] in digits:
            end += 1
        if end == first_digit:
            return None
        code = int(source[first_digit:end], 16 if hexadecimal else 10)
        if code == 0 or code >= 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            return None
        character = chr(code)
    else:
        while end < len(source) and source[end].isascii() and source[end].isalpha():
            end += 1
        named = _NAMED_CHARACTER_REFERENCES.get(source[pos + 1 : end])
        if named is None:
            return None
        character = named
    if source.startswith(";", end):
        end += 1
    return character, end


@dataclass
class _OpenTag:
    name: str
    argument: str
    utf16_offset: int
    char_index: int


class _HtmlParser:
    """A port of TDLib's ``parse_html``: the rules and error texts the Bot API applies."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.pos = 0
        self.chars: list[str] = []
        self.utf16 = 0
        self.entities: list[JsonDict] = []
        self.stack: list[_OpenTag] = []

    def parse(self) -> tuple[str, list[JsonDict]]:
        while self.pos < len(self.source):
            char = self.source[self.pos]
            decoded = _decode_character_reference(self.source, self.pos) if char == "&" else None
            if decoded is not None:
                self._emit(decoded[0])
                self.pos = decoded[1]
            elif char != "<":
                self._emit(char)
                self.pos += 1
            elif self._peek(1) == "/":
                self._close_tag()
            else:
                self._open_tag()
        if self.stack:
            name = self.stack[-1].name
            raise self._error(f'Can\'t find end tag corresponding to start tag "{name}"')
        for entity in self.entities:
            if entity["type"] == "code":
                entity.pop("language", None)
        self.entities.sort(key=lambda entity: (entity["offset"], -entity["length"]))
        return "".join(self.chars), self.entities

    # -- helpers ---------------------------------------------------------------------------

    def _peek(self, ahead: int = 0) -> str:
        index = self.pos + ahead
        return self.source[index] if index < len(self.source) else ""

    def _emit(self, char: str) -> None:
        self.chars.append(char)
        self.utf16 += utf16_length(char)

    def _skip_spaces(self) -> None:
        while self._peek().isspace():
            self.pos += 1

    def _byte_offset(self, index: int) -> int:
        return len(self.source[:index].encode())

    @staticmethod
    def _error(reason: str) -> _ApiError:
        return _bad_request(CANT_PARSE_ENTITIES + reason)

    # -- tags ------------------------------------------------------------------------------

    def _open_tag(self) -> None:
        begin = self.pos
        at = f"at byte offset {self._byte_offset(begin)}"
        self.pos += 1
        while self._peek() and not self._peek().isspace() and self._peek() != ">":
            self.pos += 1
        if not self._peek():
            raise self._error(f"Unclosed start tag {at}")
        name = self.source[begin + 1 : self.pos].lower()
        if name not in _HTML_TAGS:
            raise self._error(f'Unsupported start tag "{name}" {at}')
        argument = ""
        while True:
            self._skip_spaces()
            if not self._peek():
                raise self._error(f'Unclosed start tag "{name}" {at}')
            if self._peek() == ">":
                break
            attribute, value = self._attribute(name, at)
            if name == "a" and attribute == "href":
                argument = value
            elif name == "code" and attribute == "class" and value.startswith("language-"):
                argument = value.removeprefix("language-")
            elif name == "span" and attribute == "class" and value.startswith("tg-"):
                argument = value.removeprefix("tg-")
            elif name == "tg-emoji" and attribute == "emoji-id":
                argument = value
            elif name == "blockquote" and attribute == "expandable":
                argument = "expandable"
        self.pos += 1
        if name == "span" and argument != "spoiler":
            raise self._error(f'Tag "span" must have class "tg-spoiler" {at}')
        self.stack.append(_OpenTag(name, argument, self.utf16, len(self.chars)))

    def _attribute(self, tag: str, at: str) -> tuple[str, str]:
        start = self.pos
        while self._peek() and not self._peek().isspace() and self._peek() not in "=>":
            self.pos += 1
        attribute = self.source[start : self.pos]
        if not attribute:
            raise self._error(f'Empty attribute name in the tag "{tag}" {at}')
        self._skip_spaces()
        if self._peek() != "=":
            if tag == "blockquote" and attribute == "expandable":
                return attribute, ""
            raise self._error(
                f'Expected equal sign in declaration of an attribute of the tag "{tag}" {at}'
            )
        self.pos += 1
        self._skip_spaces()
        quote = self._peek()
        if not quote:
            raise self._error(f'Unclosed start tag "{tag}" {at}')
        if quote in "'\"":
            self.pos += 1
            value: list[str] = []
            while self._peek() and self._peek() != quote:
                decoded = (
                    _decode_character_reference(self.source, self.pos)
                    if self._peek() == "&"
                    else None
                )
                if decoded is not None:
                    value.append(decoded[0])
                    self.pos = decoded[1]
                else:
                    value.append(self._peek())
                    self.pos += 1
            if not self._peek():
                raise self._error(f"Unclosed start tag {at}")
            self.pos += 1
            return attribute, "".join(value)
        token_start = self.pos
        while self._peek() and (
            (self._peek().isascii() and self._peek().isalnum()) or self._peek() in ".-"
        ):
            self.pos += 1
        if self._peek() != ">" and not self._peek().isspace():
            offset = self._byte_offset(token_start)
            raise self._error(f"Unexpected end of name token at byte offset {offset}")
        return attribute, self.source[token_start : self.pos].lower()

    def _close_tag(self) -> None:
        begin = self.pos
        at = f"at byte offset {self._byte_offset(begin)}"
        if not self.stack:
            raise self._error(f"Unexpected end tag {at}")
        self.pos += 2
        while self._peek() and not self._peek().isspace() and self._peek() != ">":
            self.pos += 1
        end_name = self.source[begin + 2 : self.pos]
        self._skip_spaces()
        if self._peek() != ">":
            raise self._error(f"Unclosed end tag {at}")
        self.pos += 1
        tag = self.stack.pop()
        if end_name and end_name.lower() != tag.name:
            raise self._error(
                f'Unmatched end tag {at}, expected "</{tag.name}>", found "</{end_name}>"'
            )
        self._add_entity(tag)

    def _add_entity(self, tag: _OpenTag) -> None:
        length = self.utf16 - tag.utf16_offset
        if length <= 0:
            return
        entity: JsonDict = {"offset": tag.utf16_offset, "length": length}
        if tag.name in _SIMPLE_ENTITY_TYPES:
            entity["type"] = _SIMPLE_ENTITY_TYPES[tag.name]
        elif tag.name == "a":
            url = tag.argument or "".join(self.chars[tag.char_index :])
            entity.update(type="text_link", url=url)
        elif tag.name == "tg-emoji":
            entity.update(type="custom_emoji", custom_emoji_id=tag.argument)
        elif tag.name == "blockquote":
            entity["type"] = "expandable_blockquote" if tag.argument else "blockquote"
        elif tag.name == "code":
            entity.update(type="code", language=tag.argument)
        else:  # pre, possibly wrapping <code class="language-...">
            entity["type"] = "pre"
            inner = self.entities[-1] if self.entities else None
            if (
                inner is not None
                and inner["type"] == "code"
                and inner.get("language")
                and (inner["offset"], inner["length"]) == (entity["offset"], length)
            ):
                self.entities.pop()
                entity["language"] = inner["language"]
        self.entities.append(entity)


def parse_html(source: str) -> tuple[str, list[JsonDict]]:
    """Parse text sent with ``parse_mode="HTML"`` as Telegram does.

    Returns the plain text (tags removed, character references decoded) and its entities
    (offsets in UTF-16 code units). Invalid markup raises the error Telegram reports:
    400 ``Bad Request: can't parse entities: ...``.
    """
    return _HtmlParser(source).parse()


def _strip_text(text: str, entities: list[JsonDict]) -> tuple[str, list[JsonDict]]:
    """Trim surrounding whitespace like Telegram, shifting and clipping the entities."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    shift = utf16_length(text[: len(text) - len(text.lstrip())])
    total = utf16_length(stripped)
    clipped: list[JsonDict] = []
    for entity in entities:
        start = max(entity["offset"] - shift, 0)
        end = min(entity["offset"] + entity["length"] - shift, total)
        if end > start:
            clipped.append({**entity, "offset": start, "length": end - start})
    return stripped, clipped


def bot_command_entities(text: str) -> list[JsonDict]:
    """The ``bot_command`` entities Telegram attaches to a user's text (``/start``, ``/a@bot``)."""
    return [
        {
            "type": "bot_command",
            "offset": utf16_length(text[: match.start()]),
            "length": utf16_length(match.group()),
        }
        for match in _BOT_COMMAND_RE.finditer(text)
    ]


# --------------------------------------------------------------------------------------------
# Reply markup validation
# --------------------------------------------------------------------------------------------

_INLINE_BUTTON_ACTIONS = frozenset(
    {"url", "callback_data", "web_app", "login_url", "switch_inline_query"}
    | {"switch_inline_query_current_chat", "switch_inline_query_chosen_chat"}
    | {"callback_game", "pay", "copy_text"}
)


def _parse_reply_markup(
    markup: Any, *, inline_only: bool
) -> tuple[JsonDict | None, JsonDict | None]:
    """Validate ``reply_markup``; returns ``(inline_keyboard_markup, other_markup)``.

    Empty inline keyboards count as no keyboard, as in Telegram's Message objects.
    """
    if markup is None:
        return None, None
    if isinstance(markup, str):
        try:
            markup = json.loads(markup)
        except ValueError:
            raise _bad_request(MARKUP_UNPARSABLE) from None
    if not isinstance(markup, dict):
        raise _bad_request(MARKUP_NOT_OBJECT)
    if "inline_keyboard" in markup:
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise _bad_request(MARKUP_UNPARSABLE)
        for row in rows:
            for button in row:
                _validate_inline_button(button)
        if not any(rows):
            return None, None
        return copy.deepcopy(markup), None
    if inline_only:
        raise _bad_request(INLINE_KEYBOARD_EXPECTED)
    if {"keyboard", "remove_keyboard", "force_reply"} & markup.keys():
        return None, copy.deepcopy(markup)
    raise _bad_request(MARKUP_UNPARSABLE)


def _validate_inline_button(button: Any) -> None:
    if not isinstance(button, dict) or not isinstance(button.get("text"), str):
        raise _bad_request(MARKUP_UNPARSABLE)
    if not _INLINE_BUTTON_ACTIONS & button.keys():
        raise _bad_request(TEXT_BUTTONS_UNALLOWED)
    if "callback_data" in button:
        data = button["callback_data"]
        size = len(str(data).encode()) if data is not None else 0
        if not 1 <= size <= MAX_CALLBACK_DATA_BYTES:
            raise _bad_request(BUTTON_DATA_INVALID)
    if "url" in button:
        url = button["url"]
        if not isinstance(url, str) or not url or any(c.isspace() for c in url):
            raise _bad_request(BUTTON_URL_INVALID)
    if "web_app" in button:
        web_app = button["web_app"]
        url = web_app.get("url") if isinstance(web_app, dict) else None
        if not isinstance(url, str) or not url or any(c.isspace() for c in url):
            raise _bad_request(BUTTON_URL_INVALID)


def _find_button(markup: JsonDict | None, label: str) -> JsonDict | None:
    for row in (markup or {}).get("inline_keyboard", []):
        for button in row:
            if button.get("text") == label:
                return button  # type: ignore[no-any-return]
    return None


# --------------------------------------------------------------------------------------------
# Public records
# --------------------------------------------------------------------------------------------


@dataclass
class Message:
    """A message in a private chat of the fake, as it currently is (after edits/deletes).

    ``text`` is what the user sees: for ``parse_mode="HTML"`` tags are stripped and character
    references decoded. ``html`` keeps the raw text the bot sent with parse_mode HTML (None for
    user messages and other parse modes). ``reply_markup`` is the inline keyboard attached to
    the message (None if it has none); ``keyboard`` is a reply keyboard / remove / force_reply
    markup the bot sent along with it.
    """

    message_id: int
    chat_id: int
    from_bot: bool
    text: str
    date: int
    entities: list[JsonDict] = field(default_factory=list)
    html: str | None = None
    parse_mode: str | None = None
    reply_markup: JsonDict | None = None
    keyboard: JsonDict | None = None
    reply_to_message_id: int | None = None
    link_preview_options: JsonDict | None = None
    edited: bool = False
    edit_date: int | None = None
    deleted: bool = False
    # A document the bot sent (sendDocument): file_name, mime_type and the bytes as `content`;
    # `text` is then its caption.
    document: JsonDict | None = None

    def buttons(self) -> list[list[str]]:
        """Labels of the inline keyboard, row by row (empty if there is none)."""
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return [[button["text"] for button in row] for row in rows]

    def button(self, label: str) -> JsonDict:
        """The inline button with exactly this label; LookupError lists the labels available."""
        button = _find_button(self.reply_markup, label)
        if button is None:
            available = [text for row in self.buttons() for text in row]
            raise LookupError(
                f"no inline button {label!r} in message {self.message_id}; available: {available}"
            )
        return button


@dataclass
class Call:
    """One request the fake received, with the answer it gave.

    ``params`` are parsed: JSON-encoded form fields (reply_markup, entities, scope, ...) are
    decoded, numbers and booleans converted. ``time`` is the fake's ``clock`` at arrival and
    ``delay`` the seconds the response was held back by ``timeout_next``; ``via`` which
    ``url_for`` base the request came through.
    """

    method: str
    params: JsonDict
    time: float
    status: int
    response: JsonDict
    delay: float = 0.0
    via: str | None = None
    """The name in the base URL the caller used (``url_for(name)``); None for ``url``."""

    @property
    def ok(self) -> bool:
        return bool(self.response.get("ok"))

    @property
    def result(self) -> Any:
        return self.response.get("result")

    @property
    def description(self) -> str | None:
        return self.response.get("description")


# --------------------------------------------------------------------------------------------
# Internal state
# --------------------------------------------------------------------------------------------


@dataclass
class _User:
    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    blocked: bool = False

    def as_user(self) -> JsonDict:
        user: JsonDict = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            user["last_name"] = self.last_name
        if self.username:
            user["username"] = self.username
        if self.language_code:
            user["language_code"] = self.language_code
        return user

    def as_web_app_user(self) -> JsonDict:
        """The user as a Mini App's launch data has it (WebAppUser: no is_bot)."""
        user = {key: value for key, value in self.as_user().items() if key != "is_bot"}
        user["allows_write_to_pm"] = True
        return user

    def as_chat(self) -> JsonDict:
        chat: JsonDict = {"id": self.id, "type": "private", "first_name": self.first_name}
        if self.last_name:
            chat["last_name"] = self.last_name
        if self.username:
            chat["username"] = self.username
        return chat


@dataclass
class _CallbackQuery:
    chat_id: int
    message_id: int
    data: str
    delivered: bool = False
    answer: JsonDict | None = None


@dataclass
class _Rule:
    """An injected fault or delay, consumed by the next ``times`` matching requests."""

    method: str
    chat_id: int | None
    times: int
    error: Callable[[], _ApiError] | None = None
    delay: float = 0.0

    def matches(self, method: str, chat_id: int | None) -> bool:
        return self.method == method.lower() and self.chat_id in (None, chat_id)


def _take_rule(rules: list[_Rule], method: str, chat_id: int | None) -> _Rule | None:
    for rule in rules:
        if rule.matches(method, chat_id):
            rule.times -= 1
            if rule.times <= 0:
                rules.remove(rule)
            return rule
    return None


class _SlidingWindow:
    """At most ``per_second`` events per second, over a sliding window.

    Rates below 1/s become one event per ``1 / rate`` seconds.
    """

    def __init__(self, per_second: float) -> None:
        if per_second <= 0:
            raise ValueError("a rate limit must be positive (use None to disable it)")
        self.capacity = max(1, math.floor(per_second))
        self.span = self.capacity / per_second
        self.events: deque[float] = deque()

    def retry_after(self, now: float) -> int | None:
        """Seconds to wait (ceil, at least 1) if one more event now exceeds the limit."""
        while self.events and self.events[0] <= now - self.span:
            self.events.popleft()
        if len(self.events) < self.capacity:
            return None
        return max(1, math.ceil(self.events[0] + self.span - now))

    def record(self, now: float) -> None:
        self.events.append(now)


@dataclass
class _Ok:
    """A successful result, optionally with the ``description`` Telegram adds (webhooks)."""

    result: Any
    description: str | None = None


# --------------------------------------------------------------------------------------------
# Request parsing
# --------------------------------------------------------------------------------------------

# Form fields that are plain strings even when they look like JSON ("123", "true").
_STRING_PARAMS = frozenset(
    {"text", "parse_mode", "url", "secret_token", "callback_query_id", "inline_message_id"}
    | {"language_code", "description", "short_description", "caption", "ip_address", "method"}
    | {"business_connection_id", "message_effect_id", "name", "title", "data", "query"}
)
# Parameters holding objects or arrays; sent JSON-encoded in forms, and accepted that way in
# JSON bodies too.
_OBJECT_PARAMS = frozenset(
    {"reply_markup", "entities", "caption_entities", "allowed_updates", "commands", "scope"}
    | {"link_preview_options", "reply_parameters", "menu_button"}
)
_PATH_RE = re.compile(r"(?:/(?P<via>[A-Za-z0-9_.-]+))?/bot(?P<token>[^/]+)/(?P<method>[^/]+)/?")
_SECRET_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")


def _decode_form_value(key: str, value: Any) -> Any:
    if isinstance(value, web.FileField):
        content = value.file.read()
        return {
            "filename": value.filename,
            "content_type": value.content_type,
            "size": len(content),
            "content": content,
        }
    if key in _STRING_PARAMS or not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _decode_json_value(key: str, value: Any) -> Any:
    if key in _OBJECT_PARAMS and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


async def _read_params(request: web.Request) -> JsonDict:
    """Query string plus body: JSON, urlencoded or multipart form, as Telegram accepts."""
    params = {key: _decode_form_value(key, value) for key, value in request.query.items()}
    if not request.body_exists:
        return params
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise _bad_request("Bad Request: can't parse JSON object") from None
        if not isinstance(body, dict):
            raise _bad_request("Bad Request: can't parse JSON object")
        params.update({key: _decode_json_value(key, value) for key, value in body.items()})
    else:
        form = await request.post()
        params.update({key: _decode_form_value(key, value) for key, value in form.items()})
    return params


async def _read_webhook_reply(response: ClientResponse) -> JsonDict | None:
    """The method call a webhook may answer with (JSON or multipart form), if any."""
    if response.content_type == "application/json":
        try:
            body = await response.json()
        except ValueError:
            return None
        if not isinstance(body, dict):
            return None
        return {key: _decode_json_value(key, value) for key, value in body.items()}
    if response.content_type == "multipart/form-data":
        params: JsonDict = {}
        async for part in MultipartReader(response.headers, response.content):
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue
            if part.filename:
                params[part.name] = {"filename": part.filename, "size": len(await part.read())}
            else:
                params[part.name] = _decode_form_value(part.name, await part.text())
        return params
    return None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    return None


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _webhook_error_text(status: int) -> str:
    if status == 0:
        return "Connection refused"
    return f"Wrong response from the webhook: {status} {_reason(status)}".rstrip()


def _json_response(status: int, payload: JsonDict) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(payload, ensure_ascii=False),
        content_type="application/json",
    )


# --------------------------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------------------------


class FakeBotAPI(RecordingServer[Call]):
    """A Telegram Bot API server for tests, with users the test can act as.

    Start it (``await api.start()`` or ``async with FakeBotAPI() as api``) and point aiogram at
    ``api.url`` via ``TelegramAPIServer.from_base(api.url)``. Requests arrive as
    ``POST {url}/bot{token}/{method}``; answers follow Telegram: ``{"ok": true, "result": ...}``
    or ``{"ok": false, "error_code": N, "description": "..."}`` with status N.
    """

    def __init__(
        self,
        token: str = "123456:TEST",
        bot_username: str = "dpo_test_bot",
        clock: Callable[[], float] = time.monotonic,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """Create a stopped fake.

        :param token: the only token accepted (others get 401); its number is the bot's id.
        :param bot_username: the bot's username in getMe and in the ``from`` of its messages.
        :param clock: monotonic seconds for rate limits and ``Call.time`` (inject a fake one
            to test rate limiting without sleeping).
        :param wall_clock: Unix seconds for message dates.
        """
        super().__init__()
        bot_id = _as_int(token.partition(":")[0])
        if bot_id is None:
            raise ValueError(f"token must look like '<bot id>:<secret>', got {token!r}")
        self.token = token
        self.bot_username = bot_username
        self.bot_user: JsonDict = {
            "id": bot_id,
            "is_bot": True,
            "first_name": "Test Bot",
            "username": bot_username,
        }
        self._clock = clock
        self._wall_clock = wall_clock

        self.webhook: JsonDict | None = None
        """The parameters of the last successful setWebhook (None when no webhook is set)."""
        self.commands: dict[str, list[JsonDict]] = {}
        """setMyCommands results by ``commands_key(scope, language_code)``."""
        self.dropped_updates: list[JsonDict] = []
        """Updates not queued because the bot's allowed_updates excludes their type."""
        self.too_many_requests = 0
        """Number of 429 answers given (rate limiter and injected ones)."""
        self.webhook_timeout = 10.0
        """Seconds ``deliver_webhook`` waits for the bot's webhook to answer."""

        self._users: dict[int, _User] = {}
        self._chats: dict[int, dict[int, Message]] = {}
        self._updates: list[JsonDict] = []
        self._delivered: set[int] = set()
        self._last_update_id = 0
        self._allowed_updates: list[str] | None = None
        self._callbacks: dict[str, _CallbackQuery] = {}
        self._callback_count = 0
        self._faults: list[_Rule] = []
        self._delays: list[_Rule] = []
        self._overall_window: _SlidingWindow | None = None
        self._per_chat_rate: float | None = None
        self._chat_windows: dict[int, _SlidingWindow] = {}
        self._webhook_error: tuple[int, str] | None = None
        self._answered: set[int] = set()  # update ids a webhook answered with 2xx
        self._poll_generation = 0
        handlers: dict[str, Callable[[JsonDict], Any]] = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "sendMessage": self._send_message,
            "sendDocument": self._send_document,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "answerCallbackQuery": self._answer_callback_query,
            "deleteMessage": self._delete_message,
            "setMyCommands": self._set_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "getMyCommands": self._get_my_commands,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "setChatMenuButton": self._accept,
            "setMyDescription": self._accept,
            "setMyShortDescription": self._accept,
        }
        self._handlers = {name.lower(): (name, handler) for name, handler in handlers.items()}

    # -- acting as users -------------------------------------------------------------------

    def add_user(
        self,
        user_id: int,
        first_name: str = "Иван",
        last_name: str | None = None,
        username: str | None = None,
        *,
        language_code: str | None = "ru",
    ) -> None:
        """Register a user who has a private chat with the bot (chat id == user id)."""
        self._users[user_id] = _User(user_id, first_name, last_name, username, language_code)
        self._chats.setdefault(user_id, {})

    def send_text(self, user_id: int, text: str) -> JsonDict:
        """The user sends ``text``; queues and returns the ``message`` update.

        Commands get ``bot_command`` entities as Telegram adds them. A user who blocked the
        bot unblocks it first (that is what Telegram's "Restart" button does), which also
        queues the ``my_chat_member`` update.
        """
        user = self._user(user_id)
        if not text:
            raise ValueError("Telegram clients cannot send an empty message")
        if user.blocked:
            self.unblock(user_id)
        message = self._new_message(
            user_id, text, from_bot=False, entities=bot_command_entities(text)
        )
        return self._queue("message", self._message_json(message))

    def send_media(self, user_id: int, kind: str) -> JsonDict:
        """The user sends a message without text: ``kind`` is ``photo``, ``voice``, ``sticker``
        or ``document``, with the fields Telegram gives such a message (no caption)."""
        self._user(user_id)  # a known user
        media: dict[str, Any] = {
            "photo": [{"file_id": "ph1", "file_unique_id": "u-ph1", "width": 90, "height": 90}],
            "voice": {"file_id": "vo1", "file_unique_id": "u-vo1", "duration": 3},
            "sticker": {
                "file_id": "st1",
                "file_unique_id": "u-st1",
                "type": "regular",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
            },
            "document": {"file_id": "do1", "file_unique_id": "u-do1", "file_name": "a.pdf"},
        }
        if kind not in media:
            raise ValueError(f"unknown kind of message: {kind}")
        message = self._new_message(user_id, f"[{kind}]", from_bot=False)
        data = self._message_json(message)
        del data["text"]
        data[kind] = media[kind]
        return self._queue("message", data)

    def press(self, user_id: int, label: str, message_id: int | None = None) -> JsonDict:
        """The user presses the inline button labelled exactly ``label``.

        Looks in message ``message_id`` if given, else in the newest bot message of the chat
        that has such a button. Queues and returns the ``callback_query`` update (with the
        message as Telegram sends it, including its reply_markup). Raises LookupError, listing
        the labels available, if there is no such button or it is not a callback button.
        """
        user = self._user(user_id)
        message, button = self._button_of(user_id, label, message_id)
        if "callback_data" not in button:
            raise LookupError(
                f"button {label!r} of message {message.message_id} is not a callback button: "
                f"{button}"
            )
        return self._queue_callback(user, message, str(button["callback_data"]))

    def open_web_app(
        self,
        user_id: int,
        label: str,
        message_id: int | None = None,
        *,
        auth_date: int | None = None,
    ) -> str:
        """The user taps the Mini App button labelled ``label``: the URL their Telegram client
        opens, the button's URL with the launch data in the fragment (``launch_fragment``)."""
        _, button = self._button_of(user_id, label, message_id)
        if "web_app" not in button:
            raise LookupError(f"button {label!r} does not open a Mini App: {button}")
        url = str(button["web_app"]["url"])
        return f"{url}#{self.launch_fragment(user_id, auth_date=auth_date)}"

    def launch_fragment(self, user_id: int, *, auth_date: int | None = None) -> str:
        """The fragment a Telegram client gives a Mini App opened by ``user_id``:
        ``tgWebAppData`` (query_id, user, auth_date, signature, and hash: HMAC-SHA256 of the
        other fields sorted, ``key=value`` per line, under HMAC-SHA256("WebAppData", token)),
        then the version, platform and theme. ``auth_date`` defaults to ``wall_clock``."""
        user = self._user(user_id)
        fields = {
            "query_id": "AAH" + secrets.token_urlsafe(18),
            "user": json.dumps(user.as_web_app_user(), ensure_ascii=False, separators=(",", ":")),
            "auth_date": str(self._now() if auth_date is None else auth_date),
            # Telegram's Ed25519 signature for third parties; part of what the hash covers.
            "signature": base64.urlsafe_b64encode(secrets.token_bytes(64)).decode().rstrip("="),
        }
        check = "\n".join(f"{key}={value}" for key, value in sorted(fields.items()))
        secret = hmac.new(b"WebAppData", self.token.encode(), hashlib.sha256).digest()
        fields["hash"] = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
        init_data = urlencode(fields, quote_via=quote)
        theme = json.dumps({"bg_color": "#ffffff", "text_color": "#000000"})
        return urlencode(
            {
                "tgWebAppData": init_data,
                "tgWebAppVersion": "8.0",
                "tgWebAppPlatform": "android",
                "tgWebAppThemeParams": theme,
            },
            quote_via=quote,
        )

    def _button_of(
        self, user_id: int, label: str, message_id: int | None
    ) -> tuple[Message, JsonDict]:
        """The inline button ``label`` of message ``message_id``, else of the newest bot
        message that has one; LookupError lists the labels available."""
        if message_id is not None:
            candidates = [self._require_message(user_id, message_id)]
        else:
            candidates = [m for m in reversed(self.chat(user_id)) if m.from_bot and m.reply_markup]
        for message in candidates:
            button = _find_button(message.reply_markup, label)
            if button is not None:
                return message, button
        available = [text for m in candidates for row in m.buttons() for text in row]
        where = f"message {message_id}" if message_id is not None else "any bot message"
        raise LookupError(
            f"no inline button {label!r} in {where} of chat {user_id}; available: {available}"
        )

    def press_data(self, user_id: int, data: str, message_id: int) -> JsonDict:
        """Queue a ``callback_query`` with arbitrary (forged) ``data`` on message ``message_id``."""
        user = self._user(user_id)
        return self._queue_callback(user, self._require_message(user_id, message_id), data)

    def block(self, user_id: int) -> JsonDict | None:
        """The user blocks the bot: sends and edits to them fail with 403 from now on.

        Queues and returns the ``my_chat_member`` update (member -> kicked); None if the
        user had already blocked the bot.
        """
        user = self._user(user_id)
        if user.blocked:
            return None
        user.blocked = True
        return self._queue_member_change(user, old="member", new="kicked")

    def unblock(self, user_id: int) -> JsonDict | None:
        """The user unblocks the bot; queues and returns the ``my_chat_member`` update."""
        user = self._user(user_id)
        if not user.blocked:
            return None
        user.blocked = False
        return self._queue_member_change(user, old="kicked", new="member")

    def pending_updates(self) -> list[JsonDict]:
        """Queued updates not yet fetched by getUpdates, a webhook or ``take_updates``."""
        return [copy.deepcopy(u) for u in self._updates if u["update_id"] not in self._delivered]

    def unconfirmed_updates(self) -> list[JsonDict]:
        """Updates Telegram still holds: not confirmed by a later getUpdates offset (polling),
        nor answered 2xx (webhook); fetched ones included. It delivers them again."""
        return [copy.deepcopy(u) for u in self._updates]

    def take_updates(self) -> list[JsonDict]:
        """Remove and return all queued updates (to feed a Dispatcher in-process)."""
        updates, self._updates = self._updates, []
        self._mark_delivered(updates)
        return updates

    # -- inspecting ------------------------------------------------------------------------

    def chat(self, chat_id: int) -> list[Message]:
        """The chat's current messages (user's and bot's) in order; deleted ones left out."""
        return [m for m in self._chats.get(chat_id, {}).values() if not m.deleted]

    def message(self, chat_id: int, message_id: int) -> Message:
        """One message of the chat, deleted or not; LookupError if it never existed."""
        try:
            return self._chats[chat_id][message_id]
        except KeyError:
            raise LookupError(f"no message {message_id} in chat {chat_id}") from None

    def last_bot_message(self, chat_id: int) -> Message:
        """The newest (not deleted) message the bot sent to the chat."""
        for message in reversed(self.chat(chat_id)):
            if message.from_bot:
                return message
        raise LookupError(f"the bot has no messages in chat {chat_id}")

    def calls_of(self, method: str) -> list[Call]:
        """Recorded calls of one method (name matched case-insensitively, like Telegram)."""
        return [call for call in self.calls if call.method.lower() == method.lower()]

    def unanswered_callbacks(self) -> list[str]:
        """Ids of callback queries delivered to the bot but never answered."""
        return [
            query_id
            for query_id, query in self._callbacks.items()
            if query.delivered and query.answer is None
        ]

    def callback_answer(self, callback_query_id: str) -> JsonDict | None:
        """The answerCallbackQuery parameters (text, show_alert, ...) given to a query."""
        query = self._callbacks.get(callback_query_id)
        return None if query is None else query.answer

    @staticmethod
    def commands_key(scope: JsonDict | None = None, language_code: str | None = None) -> str:
        """The key of ``commands`` for a scope (default scope if None) and language code."""
        return json.dumps(
            {"scope": scope or {"type": "default"}, "language_code": language_code or ""},
            sort_keys=True,
            ensure_ascii=False,
        )

    def commands_for(
        self, scope: JsonDict | None = None, language_code: str | None = None
    ) -> list[JsonDict] | None:
        """The commands set for a scope and language code, None if none are set."""
        return self.commands.get(self.commands_key(scope, language_code))

    # -- fault injection -------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        *,
        error_code: int,
        description: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
        chat_id: int | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``method`` (optionally only for ``chat_id``) fail.

        The call has no effect. Without ``description`` a Telegram-like one is used; a 429
        always carries ``parameters.retry_after`` (1 unless given).
        """
        if error_code == 429:
            retry_after = 1 if retry_after is None else retry_after
            text = description or f"Too Many Requests: retry after {retry_after}"
        else:
            text = description or _DEFAULT_DESCRIPTIONS.get(error_code, "Error")

        def error() -> _ApiError:
            return _ApiError(error_code, text, retry_after)

        self._faults.append(_Rule(method.lower(), chat_id, self._positive(times), error=error))

    def timeout_next(
        self, method: str, *, seconds: float, times: int = 1, chat_id: int | None = None
    ) -> None:
        """Hold back the response of the next ``times`` calls of ``method`` by ``seconds``.

        The call itself is executed (a message does get sent), as happens when a real request
        times out on the client side, so retries can be checked for duplicates.
        """
        self._delays.append(_Rule(method.lower(), chat_id, self._positive(times), delay=seconds))

    def set_rate_limits(
        self, overall_per_second: float | None = 30, per_chat_per_second: float | None = 1
    ) -> None:
        """Enforce Telegram-like flood limits (off until called; None disables one limit).

        sendMessage counts against both limits, editMessageText/editMessageReplyMarkup against
        the per-chat one. Over a limit the call fails with 429 "Too Many Requests: retry after N"
        (N = seconds until the sliding one-second window frees up, rounded up, at least 1).
        """
        self._overall_window = (
            None if overall_per_second is None else _SlidingWindow(overall_per_second)
        )
        self._per_chat_rate = per_chat_per_second
        self._chat_windows.clear()

    # -- webhook delivery ------------------------------------------------------------------

    async def deliver_webhook(self, concurrency: int = 1) -> list[int]:
        """POST the queued updates to the webhook set with setWebhook; returns the statuses.

        An update leaves the queue only when the webhook answered 2xx. With ``concurrency`` 1
        (the default) updates go one at a time, in order, and delivery stops at the first
        other answer (the update stays queued, getWebhookInfo shows the error). With more,
        up to that many requests are open at once, as Telegram opens up to ``max_connections``;
        an update whose request fails (another status, a refused or dropped connection: status
        0 here) stays queued for the next call.
        """
        if self.webhook is None:
            raise RuntimeError("no webhook is set: the bot has not called setWebhook")
        url, secret = self.webhook["url"], self.webhook.get("secret_token")
        if concurrency > 1:
            slots = asyncio.Semaphore(concurrency)

            async def deliver(update: JsonDict) -> int:
                async with slots:
                    try:
                        return await self.deliver_to(url, update, secret)
                    except (ClientError, TimeoutError):
                        return 0

            statuses = list(await asyncio.gather(*(deliver(u) for u in list(self._updates))))
            self._forget_answered()
            for status in statuses:
                if not 200 <= status < 300:
                    self._webhook_error = (self._now(), _webhook_error_text(status))
            return statuses
        statuses = []
        for update in list(self._updates):
            status = await self.deliver_to(url, update, secret)
            statuses.append(status)
            if not 200 <= status < 300:
                self._webhook_error = (self._now(), _webhook_error_text(status))
                break
            self._forget_answered()
        return statuses

    def _forget_answered(self) -> None:
        """Drop from the queue the updates a webhook answered with 2xx."""
        self._updates = [u for u in self._updates if u["update_id"] not in self._answered]

    async def deliver_to(self, url: str, update: JsonDict, secret: str | None = None) -> int:
        """POST one update to ``url`` as Telegram does; returns the HTTP status.

        Sends ``X-Telegram-Bot-Api-Secret-Token`` when ``secret`` is given. If the webhook
        answers with a method call (JSON or form with a ``method`` field), it is executed like
        Telegram does. Connection errors propagate.
        """
        headers = {SECRET_TOKEN_HEADER: secret} if secret else {}
        timeout = ClientTimeout(total=self.webhook_timeout)
        async with (
            ClientSession(timeout=timeout) as session,
            session.post(url, json=update, headers=headers) as response,
        ):
            status = response.status
            reply = await _read_webhook_reply(response) if 200 <= status < 300 else None
        if 200 <= status < 300:
            self._mark_delivered([update])
            self._answered.add(update["update_id"])
            if reply and isinstance(reply.get("method"), str):
                await self._execute(reply.pop("method"), reply, token=self.token)
        return status

    # -- HTTP ------------------------------------------------------------------------------

    async def _handle_request(self, request: web.Request) -> web.Response:
        match = _PATH_RE.fullmatch(request.path)
        if match is None:
            return _json_response(404, _ApiError(404, NOT_FOUND).payload())
        try:
            params = await _read_params(request)
        except _ApiError as exc:
            call = Call(
                match["method"], {}, self._clock(), exc.error_code, exc.payload(), via=match["via"]
            )
            self._record(call)
        else:
            call = await self._execute(
                match["method"], params, token=match["token"], via=match["via"]
            )
        if call.delay > 0:
            await self._pause(call.delay)
        return _json_response(call.status, call.response)

    async def _execute(
        self, method: str, params: JsonDict, *, token: str, via: str | None = None
    ) -> Call:
        """Run one API call (faults, delays, the method itself) and record it."""
        started = self._clock()
        name, handler = self._handlers.get(method.lower(), (method, None))
        chat_id = _as_int(params.get("chat_id"))
        delay = 0.0
        try:
            if token != self.token:
                raise _ApiError(401, UNAUTHORIZED)
            fault = _take_rule(self._faults, name, chat_id)
            if fault is not None and fault.error is not None:
                raise fault.error()
            if handler is None:
                raise _ApiError(404, NOT_FOUND)
            held = _take_rule(self._delays, name, chat_id)
            delay = held.delay if held is not None else 0.0
            result = handler(params)
            if inspect.isawaitable(result):
                result = await result
            ok = result if isinstance(result, _Ok) else _Ok(result)
            status, response = 200, {"ok": True, "result": ok.result}
            if ok.description:
                response["description"] = ok.description
        except _ApiError as exc:
            status, response = exc.error_code, exc.payload()
        if status == 429:
            self.too_many_requests += 1
        call = Call(name, params, started, status, response, delay, via)
        self._record(call)
        return call

    # -- methods: bot and updates ----------------------------------------------------------

    def _get_me(self, params: JsonDict) -> JsonDict:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, params: JsonDict) -> list[JsonDict]:
        """Long poll: confirm updates below ``offset``, then wait up to ``timeout`` seconds.

        Returns as soon as an update is queued. A newer getUpdates terminates a waiting one
        with 409, as Telegram does. ``timeout`` may be fractional here (Telegram: integer).
        """
        if self.webhook is not None:
            raise _ApiError(409, WEBHOOK_ACTIVE)
        offset = _as_int(params.get("offset")) or 0
        limit = min(max(_as_int(params.get("limit")) or 100, 1), 100)
        raw_timeout = params.get("timeout")
        timeout = float(raw_timeout) if isinstance(raw_timeout, int | float) else 0.0
        if isinstance(params.get("allowed_updates"), list):
            self._allowed_updates = list(params["allowed_updates"]) or None
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]

        self._poll_generation += 1
        generation = self._poll_generation
        self._wakeup.set()  # an earlier long poll, if any, is now terminated
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        while True:
            if generation != self._poll_generation:
                raise _ApiError(409, POLL_TERMINATED)
            batch = self._updates[:limit]
            remaining = deadline - loop.time()
            if batch or remaining <= 0 or self._stopping.is_set():
                break
            await self._wait_for_wakeup(remaining)
        self._mark_delivered(batch)
        return copy.deepcopy(batch)

    # -- methods: messages -----------------------------------------------------------------

    def _send_message(self, params: JsonDict) -> JsonDict:
        def content(chat_id: int) -> JsonDict:
            text, entities, html = self._message_text(params, too_long=TEXT_TOO_LONG)
            inline, keyboard = _parse_reply_markup(params.get("reply_markup"), inline_only=False)
            return {
                "text": text,
                "entities": entities,
                "html": html,
                "parse_mode": params.get("parse_mode") or None,
                "reply_markup": inline,
                "keyboard": keyboard,
                "reply_to_message_id": self._reply_target(chat_id, params),
                "link_preview_options": self._link_preview_options(params),
            }

        return self._message_json(self._send(params, content))

    def _send_document(self, params: JsonDict) -> JsonDict:
        """A document uploaded as a multipart file (its bytes kept), with an optional caption."""
        upload = params.get("document")
        if isinstance(upload, str) and upload.startswith("attach://"):  # a part of the form
            upload = params.get(upload.removeprefix("attach://"))
        caption = str(params.get("caption") or "")

        def content(chat_id: int) -> JsonDict:
            if not isinstance(upload, dict) or "content" not in upload:
                raise _bad_request("Bad Request: there is no document in the request")
            if upload["size"] == 0:
                raise _bad_request("Bad Request: file must be non-empty")
            if upload["size"] > 50 * 1024 * 1024:
                raise _bad_request("Bad Request: file is too big")
            if len(caption) > 1024:
                raise _bad_request("Bad Request: message caption is too long")
            document = {
                "file_name": upload["filename"],
                "mime_type": upload["content_type"],
                "content": upload["content"],
            }
            return {"text": caption, "document": document}

        message = self._send(params, content)
        assert message.document is not None
        data = self._message_json(message)
        del data["text"]
        data["caption"] = caption
        data["document"] = {
            "file_id": f"doc{message.message_id}",
            "file_unique_id": f"u-doc{message.message_id}",
            "file_name": message.document["file_name"],
            "mime_type": message.document["mime_type"],
            "file_size": len(message.document["content"]),
        }
        return data

    def _edit_message_text(self, params: JsonDict) -> JsonDict:
        message = self._message_to_edit(params)
        now = self._clock()
        windows = self._rate_windows(message.chat_id, overall=False)
        self._enforce(windows, now)
        text, entities, html = self._message_text(params, too_long=EDIT_TEXT_TOO_LONG)
        inline, _ = _parse_reply_markup(params.get("reply_markup"), inline_only=True)
        if (text, entities, inline) == (message.text, message.entities, message.reply_markup):
            raise _bad_request(NOT_MODIFIED)
        message.text, message.entities, message.html = text, entities, html
        message.parse_mode = params.get("parse_mode") or None
        message.reply_markup = inline  # an edit without reply_markup drops the keyboard
        if "link_preview_options" in params or "disable_web_page_preview" in params:
            message.link_preview_options = self._link_preview_options(params)
        self._mark_edited(message)
        for window in windows:
            window.record(now)
        return self._message_json(message)

    def _edit_message_reply_markup(self, params: JsonDict) -> JsonDict:
        message = self._message_to_edit(params)
        now = self._clock()
        windows = self._rate_windows(message.chat_id, overall=False)
        self._enforce(windows, now)
        inline, _ = _parse_reply_markup(params.get("reply_markup"), inline_only=True)
        if inline == message.reply_markup:
            raise _bad_request(NOT_MODIFIED)
        message.reply_markup = inline
        self._mark_edited(message)
        for window in windows:
            window.record(now)
        return self._message_json(message)

    def _delete_message(self, params: JsonDict) -> bool:
        user = self._resolve_chat(params)
        message = self._live_message(user.id, params.get("message_id"))
        if message is None:
            raise _bad_request(DELETE_NOT_FOUND)
        message.deleted = True
        return True

    def _answer_callback_query(self, params: JsonDict) -> bool:
        query = self._callbacks.get(str(params.get("callback_query_id") or ""))
        if query is None or query.answer is not None:
            raise _bad_request(QUERY_INVALID)
        if utf16_length(str(params.get("text") or "")) > MAX_CALLBACK_ANSWER_LENGTH:
            raise _bad_request(ANSWER_TOO_LONG)
        keys = ("text", "show_alert", "url", "cache_time")
        query.answer = {key: params[key] for key in keys if key in params}
        return True

    # -- methods: commands, webhook, profile -----------------------------------------------

    def _set_my_commands(self, params: JsonDict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad_request(COMMANDS_UNPARSABLE)
        validated = [self._validate_command(command) for command in commands]
        key = self.commands_key(params.get("scope"), params.get("language_code"))
        if validated:
            self.commands[key] = validated
        else:
            self.commands.pop(key, None)
        return True

    def _delete_my_commands(self, params: JsonDict) -> bool:
        self.commands.pop(self.commands_key(params.get("scope"), params.get("language_code")), None)
        return True

    def _get_my_commands(self, params: JsonDict) -> list[JsonDict]:
        key = self.commands_key(params.get("scope"), params.get("language_code"))
        return copy.deepcopy(self.commands.get(key, []))

    @staticmethod
    def _validate_command(command: Any) -> JsonDict:
        if not isinstance(command, dict):
            raise _bad_request(COMMANDS_UNPARSABLE)
        name = str(command.get("command") or "").removeprefix("/")
        if not re.fullmatch(r"[a-z0-9_]{1,32}", name):
            raise _bad_request(BOT_COMMAND_INVALID)
        description = str(command.get("description") or "").strip()
        if not description:
            raise _bad_request(COMMAND_DESCRIPTION_EMPTY)
        return {"command": name, "description": description[:256]}

    def _set_webhook(self, params: JsonDict) -> _Ok:
        url = str(params.get("url") or "")
        if not url:
            return self._delete_webhook(params)
        if not url.startswith(("https://", "http://")):
            raise _bad_request(WEBHOOK_URL_INVALID)
        secret = params.get("secret_token")
        if secret is not None and not _SECRET_TOKEN_RE.fullmatch(str(secret)):
            raise _bad_request(SECRET_TOKEN_INVALID)
        webhook = {key: value for key, value in params.items() if key != "certificate"}
        if params.get("drop_pending_updates"):
            self._updates.clear()
        if isinstance(params.get("allowed_updates"), list):
            self._allowed_updates = list(params["allowed_updates"]) or None
        already = self.webhook == webhook
        self.webhook = webhook
        self._webhook_error = None
        return _Ok(True, "Webhook is already set" if already else "Webhook was set")

    def _delete_webhook(self, params: JsonDict) -> _Ok:
        if params.get("drop_pending_updates"):
            self._updates.clear()
        existed, self.webhook = self.webhook is not None, None
        return _Ok(True, "Webhook was deleted" if existed else "Webhook is already deleted")

    def _get_webhook_info(self, params: JsonDict) -> JsonDict:
        info: JsonDict = {
            "url": self.webhook["url"] if self.webhook else "",
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self.webhook is not None:
            info["max_connections"] = _as_int(self.webhook.get("max_connections")) or 40
            for key in ("ip_address", "allowed_updates"):
                if key in self.webhook:
                    info[key] = self.webhook[key]
            if self._webhook_error is not None:
                info["last_error_date"], info["last_error_message"] = self._webhook_error
        return info

    @staticmethod
    def _accept(params: JsonDict) -> bool:
        return True

    # -- helpers ---------------------------------------------------------------------------

    def _now(self) -> int:
        return int(self._wall_clock())

    def _user(self, user_id: int) -> _User:
        try:
            return self._users[user_id]
        except KeyError:
            raise LookupError(f"unknown user {user_id}: call add_user() first") from None

    def _resolve_chat(self, params: JsonDict) -> _User:
        raw = params.get("chat_id")
        if raw is None or raw == "":
            raise _bad_request(CHAT_ID_EMPTY)
        chat_id = _as_int(raw)
        user = self._users.get(chat_id) if chat_id is not None else None
        if user is None:
            raise _bad_request(CHAT_NOT_FOUND)
        return user

    def _next_message_id(self, chat_id: int) -> int:
        return max(self._chats.setdefault(chat_id, {}), default=0) + 1

    def _new_message(self, chat_id: int, text: str, *, from_bot: bool, **fields: Any) -> Message:
        """Store a new message of the chat, dated now."""
        message_id = self._next_message_id(chat_id)
        message = Message(message_id, chat_id, from_bot, text, self._now(), **fields)
        self._chats[chat_id][message_id] = message
        return message

    def _send(self, params: JsonDict, content: Callable[[int], JsonDict]) -> Message:
        """The bot sends a message to the chat of ``params``, under the flood limits.

        ``content(chat_id)`` checks the request and gives the message's fields, ``text``
        included; a chat that blocked the bot refuses only a request that passed those checks.
        """
        user = self._resolve_chat(params)
        now = self._clock()
        windows = self._rate_windows(user.id, overall=True)
        self._enforce(windows, now)
        fields = content(user.id)
        if user.blocked:
            raise _ApiError(403, BOT_BLOCKED)
        message = self._new_message(user.id, fields.pop("text"), from_bot=True, **fields)
        for window in windows:
            window.record(now)
        return message

    def _live_message(self, chat_id: int, message_id: Any) -> Message | None:
        message = self._chats.get(chat_id, {}).get(_as_int(message_id) or 0)
        return None if message is None or message.deleted else message

    def _require_message(self, chat_id: int, message_id: int) -> Message:
        message = self._live_message(chat_id, message_id)
        if message is None:
            raise LookupError(f"no message {message_id} in chat {chat_id} (never sent or deleted)")
        return message

    def _message_to_edit(self, params: JsonDict) -> Message:
        if params.get("inline_message_id"):
            raise _bad_request(MESSAGE_ID_INVALID)
        user = self._resolve_chat(params)
        message = self._live_message(user.id, params.get("message_id"))
        if message is None:
            raise _bad_request(EDIT_NOT_FOUND)
        if not message.from_bot:
            raise _bad_request(CANT_BE_EDITED)
        if user.blocked:
            raise _ApiError(403, BOT_BLOCKED)
        return message

    def _mark_edited(self, message: Message) -> None:
        message.edited = True
        message.edit_date = self._now()

    def _message_text(
        self, params: JsonDict, *, too_long: str
    ) -> tuple[str, list[JsonDict], str | None]:
        """Plain text, entities and raw HTML of a send/edit, validated like Telegram."""
        raw = params.get("text")
        raw = "" if raw is None else str(raw)
        parse_mode = str(params.get("parse_mode") or "")
        html = None
        if parse_mode.lower() == "html":
            text, entities = parse_html(raw)
            html = raw
        elif parse_mode.lower() in ("", "markdown", "markdownv2"):
            text, entities = raw, []
            if not parse_mode and params.get("entities") is not None:
                entities = params["entities"]
                if not isinstance(entities, list) or not all(isinstance(e, dict) for e in entities):
                    raise _bad_request(ENTITIES_UNPARSABLE)
                entities = copy.deepcopy(entities)
        else:
            raise _bad_request(UNSUPPORTED_PARSE_MODE)
        text, entities = _strip_text(text, entities)
        if not text:
            raise _bad_request(TEXT_EMPTY)
        if utf16_length(text) > MAX_TEXT_LENGTH:
            raise _bad_request(too_long)
        return text, entities, html

    def _reply_target(self, chat_id: int, params: JsonDict) -> int | None:
        reply = params.get("reply_parameters")
        if reply is None and params.get("reply_to_message_id") is not None:
            reply = {
                "message_id": params["reply_to_message_id"],
                "allow_sending_without_reply": params.get("allow_sending_without_reply"),
            }
        if not isinstance(reply, dict):
            return None
        target = self._live_message(chat_id, reply.get("message_id"))
        if target is not None:
            return target.message_id
        if reply.get("allow_sending_without_reply"):
            return None
        raise _bad_request(REPLY_NOT_FOUND)

    @staticmethod
    def _link_preview_options(params: JsonDict) -> JsonDict | None:
        options = params.get("link_preview_options")
        if isinstance(options, dict):
            return copy.deepcopy(options)
        if params.get("disable_web_page_preview"):
            return {"is_disabled": True}
        return None

    def _message_json(self, message: Message, *, with_reply: bool = True) -> JsonDict:
        """The message as a Bot API Message object."""
        user = self._users[message.chat_id]
        data: JsonDict = {
            "message_id": message.message_id,
            "from": dict(self.bot_user) if message.from_bot else user.as_user(),
            "chat": user.as_chat(),
            "date": message.date,
        }
        if message.edit_date is not None:
            data["edit_date"] = message.edit_date
        if with_reply and message.reply_to_message_id is not None:
            replied = self._live_message(message.chat_id, message.reply_to_message_id)
            if replied is not None:
                data["reply_to_message"] = self._message_json(replied, with_reply=False)
        data["text"] = message.text
        if message.entities:
            data["entities"] = copy.deepcopy(message.entities)
        if message.link_preview_options:
            data["link_preview_options"] = copy.deepcopy(message.link_preview_options)
        if message.reply_markup:
            data["reply_markup"] = copy.deepcopy(message.reply_markup)
        return data

    # -- rate limiting ---------------------------------------------------------------------

    def _rate_windows(self, chat_id: int, *, overall: bool) -> list[_SlidingWindow]:
        windows: list[_SlidingWindow] = []
        if self._per_chat_rate is not None:
            window = self._chat_windows.get(chat_id)
            if window is None:
                window = self._chat_windows[chat_id] = _SlidingWindow(self._per_chat_rate)
            windows.append(window)
        if overall and self._overall_window is not None:
            windows.append(self._overall_window)
        return windows

    @staticmethod
    def _enforce(windows: list[_SlidingWindow], now: float) -> None:
        waits = [wait for window in windows if (wait := window.retry_after(now)) is not None]
        if waits:
            raise _too_many_requests(max(waits))

    # -- update queue ----------------------------------------------------------------------

    def _is_allowed(self, update_type: str) -> bool:
        if self._allowed_updates is None:
            return update_type not in _NOT_SENT_BY_DEFAULT
        return update_type in self._allowed_updates

    def _queue(self, update_type: str, payload: JsonDict) -> JsonDict:
        self._last_update_id += 1
        update = {"update_id": self._last_update_id, update_type: payload}
        if self._is_allowed(update_type):
            self._updates.append(update)
            self._wakeup.set()
        else:
            self.dropped_updates.append(update)
        return copy.deepcopy(update)

    def _queue_callback(self, user: _User, message: Message, data: str) -> JsonDict:
        self._callback_count += 1
        query_id = str(4_000_000_000_000_000_000 + self._callback_count)
        self._callbacks[query_id] = _CallbackQuery(user.id, message.message_id, data)
        return self._queue(
            "callback_query",
            {
                "id": query_id,
                "from": user.as_user(),
                "message": self._message_json(message),
                "chat_instance": str(-(self.bot_user["id"] * 1_000_003 + user.id)),
                "data": data,
            },
        )

    def _queue_member_change(self, user: _User, *, old: str, new: str) -> JsonDict:
        def member(status: str) -> JsonDict:
            member: JsonDict = {"user": dict(self.bot_user), "status": status}
            if status == "kicked":
                member["until_date"] = 0
            return member

        return self._queue(
            "my_chat_member",
            {
                "chat": user.as_chat(),
                "from": user.as_user(),
                "date": self._now(),
                "old_chat_member": member(old),
                "new_chat_member": member(new),
            },
        )

    def _mark_delivered(self, updates: list[JsonDict]) -> None:
        for update in updates:
            self._delivered.add(update["update_id"])
            query = update.get("callback_query")
            if isinstance(query, dict) and query.get("id") in self._callbacks:
                self._callbacks[query["id"]].delivered = True
