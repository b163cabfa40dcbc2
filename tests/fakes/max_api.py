"""A MAX Bot API test double: an aiohttp server on 127.0.0.1 standing in for platform-api2.max.ru.

Point a real maxapi ``Bot`` at it (``bot.set_api_url(api.url)``) and the bot talks HTTP to a
server that answers with MAX's shapes, statuses and error bodies, while the test acts as users
(``send_text``, ``press``, ``start_bot``, ``stop_bot``, ``remove_dialog``) and inspects what
happened (``chat``, ``calls``, ``unanswered_callbacks``, ``notifications``)::

    async with FakeMaxAPI() as api:
        api.add_user(42)
        bot = Bot(api.token)
        bot.set_api_url(api.url)
        api.start_bot(42, payload="link-token")    # https://max.ru/<bot>?start=link-token
        ...  # poll GET /updates with markers, or take_updates(), or deliver_webhook()
        assert api.last_bot_message(42).buttons() == [["Да", "Нет"]]
        api.press(42, "Да")

Where the shapes come from (nothing is copied; these are the references):

* dev.max.ru method pages: ``/docs-api/methods/GET/updates``, ``POST/messages``, ``PUT/messages``,
  ``POST/answers``, ``POST/subscriptions``; ``/docs-api/use-cases/sending-messages/keyboard``
  (keyboard limits); ``/help/events`` (webhook retries, 8 h); ``/help/deeplinks`` (``?start=``).
* github.com/max-messenger/max-bot-api-client-go (the official Go client): ``schema.yaml``
  (OpenAPI 0.0.30: Update, Message, MessageBody, Callback, CallbackAnswer, NewMessageBody,
  SubscriptionRequestBody, Error), ``stabs/update.*.json`` and ``stabs/webhook.*.json`` (real
  updates: ``bot_started`` with ``user_id``, ``message_callback`` with the message's
  ``recipient.user_id`` = the user, ``mid`` = ``"mid."`` + chat id and ``seq`` in 16 hex digits
  each), ``stabs/error.invalid-token.json``, ``stabs/chats/dialog-with-user.json``,
  ``stabs/botInfo.ok.json``, ``bot.go`` (init data check).
* github.com/love-apples/maxapi ``docs/MAX_API_Real_Payloads_2026.md`` (captured payloads: the
  ``inline_keyboard`` attachment carries the update's ``callback_id``, ``markup`` with UTF-16
  ``from``/``length``, callback buttons come back with ``intent``, ``user_locale``) and
  ``maxapi/connection/base.py`` (how the client turns statuses into exceptions);
  ``maxapi/methods/set_commands.py`` (``PATCH /me/commands`` with ``{"commands": [{"name",
  "description"}]}``, up to 32, answered with the list: the shapes as maxapi sends and reads them,
  *unverified* by dev.max.ru's pages read).
* uploads: dev.max.ru ``/docs-api/methods/POST/uploads`` (``POST /uploads?type=``, one file per
  upload URL, multipart field ``data``, the token for ``attachments.payload.token``; for video and
  audio the token comes with the URL and the upload answers ``retval``); the Go client's
  ``upload.go``, ``model/upload.go`` and ``stabs/upload.video.response.xml`` (the answers:
  ``{"token"}`` for a file, ``{"photos": {<id>: {"token"}}}`` for an image) and ``schema.yaml``
  (UploadEndpoint, FileAttachment with ``filename`` and ``size``, FileAttachmentPayload with
  ``url`` and ``token``; a file or audio "MUST be the only attachment in message"); maxapi's
  ``utils/message.py`` (reads the same tokens); ``fileId`` beside a file's token: green-api's
  MAX documentation (*unverified* by MAX's).

Errors have MAX's shape ``{"code": ..., "message": ...}``. Confirmed codes: ``verify.token``
(401, schema and Go stub). Seen in third-party code against the real API, *unverified* by MAX's
docs: ``proto.payload`` (400), ``chat.denied`` / ``error.dialog.suspended`` (403, send to a user
who stopped the bot), ``dialog.not.found`` / ``error.dialog.notfound`` (no dialog),
``too.many.requests`` (429; no Retry-After is sent, none is documented). ``not.found`` (404) and
``method.not.allowed`` (405) are this double's own; so are all the ``message`` texts.

Scope and deliberate simplifications:

* dialogs only (``chat_type: "dialog"``); each user has one dialog whose ``chat_id`` differs
  from the ``user_id`` (as in MAX); sends accept either ``?chat_id=`` or ``?user_id=``;
* ``format=html`` is parsed into plain text + ``markup`` (MAX's tag set, unknown tags stripped as
  MAX documents); ``markdown`` is stored verbatim without markup; the 4,000-character limit is
  applied to the text as sent;
* a keyboard's ``callback_id`` belongs to the keyboard (schema: "Current keyboard identifier";
  the captured payload shows it on the attachment): every press on it carries the same id and
  its own millisecond ``timestamp``; each answer consumes one unanswered press (*unverified*);
* ``PUT /messages`` and a callback answer's ``message``: ``attachments`` left out or null keep
  the current ones, ``[]`` removes them all (schema, "Edit message"); ``text`` left out keeps
  the text (*unverified*). maxapi always sends ``attachments: []``, so its edits drop the keyboard
  unless it is passed again;
* uploads: the upload URL is the double's own (``/upload/<id>``; MAX's is another host, signed,
  *unverified*: no ``Authorization`` is required there, one is accepted); multipart only (MAX also
  takes a resumable upload); a file is ready at once (MAX may answer ``attachment.not.ready`` for a
  while: ``fail_next`` gives that answer); an attached file's ``url`` serves its bytes;
* long polling while a webhook subscription exists waits and returns nothing (MAX: "При активной
  подписке Long Polling не работает"; the exact answer is *unverified*);
* webhook URLs may be ``http://`` on 127.0.0.1/localhost only (MAX accepts HTTPS with a trusted
  certificate only); updates are pushed only when the test calls ``deliver_webhook``;
* rate limits: 2 sends+edits a second per dialog and 2 answers a second per dialog are on by
  default (documented); an overall limit (a partner's FAQ says 30 rps, *unverified*) is off
  unless set, and never counts long polls;
* time: ``clock`` (monotonic seconds) drives rate limits and ``Call.time``; ``wall_clock`` (Unix
  seconds) gives millisecond timestamps, strictly increasing so that each event has its own.
  Long-poll and response delays use real time.

Several processes sharing one double can be told apart: point each at ``api.url_for(name)``
and its requests are recorded with ``Call.via == name``. ``observe(callback)`` calls back with
every recorded call, so a test can wait for a reply without polling.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any, Literal
from urllib.parse import urlsplit

from aiohttp import ClientSession, ClientTimeout, web

from tests.fakes.bot_api import (
    _ApiError,
    _as_int,
    _json_response,
    _reason,
    _Rule,
    _SlidingWindow,
    _take_rule,
)
from tests.fakes.server import RecordingServer

__all__ = ["Call", "FakeMaxAPI", "Message", "UploadedFile", "parse_max_html"]

JsonDict = dict[str, Any]

# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------

SECRET_HEADER = "X-Max-Bot-Api-Secret"

INVALID_TOKEN = "Invalid access_token"
DIALOG_SUSPENDED = "error.dialog.suspended"
DIALOG_NOT_FOUND = "error.dialog.notfound"
TOO_MANY_REQUESTS = "Too many requests"

MAX_TEXT_LENGTH = 4000
MAX_BUTTONS = 210
MAX_ROWS = 30
MAX_ROW_BUTTONS = 7
MAX_WIDE_ROW_BUTTONS = 3
MAX_BUTTON_TEXT = 128
MAX_BUTTON_PAYLOAD = 1024
MAX_LINK_URL = 2048
MAX_START_PAYLOAD = 128
MAX_COMMANDS = 32
EDIT_WINDOW_MS = 7 * 24 * 3600 * 1000
WEBHOOK_GIVE_UP_MS = 8 * 3600 * 1000
UPLOAD_MAX_BYTES = 64 * 1024 * 1024  # this double's own bound (MAX: a file up to 4 GB)

# Buttons of which a row holds at most 3 (keyboard page).
_WIDE_BUTTONS = frozenset({"link", "open_app", "request_geo_location", "request_contact"})
_BUTTON_TYPES = frozenset(
    {"callback", "link", "open_app", "message", "request_contact", "request_geo_location"}
    | {"clipboard", "chat"}
)
_INTENTS = frozenset({"default", "positive", "negative"})
_ATTACHMENT_TYPES = frozenset(
    {"inline_keyboard", "image", "video", "audio", "file", "sticker", "contact", "share"}
    | {"location"}
)
_OPEN_APP_PAYLOAD_RE = re.compile(r"[\w-]{0,512}")
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{5,256}")
_COMMAND_RE = re.compile(r"[a-z0-9_]{1,64}")  # *unverified*: MAX documents no command syntax
_ROOTS = frozenset(
    {"me", "updates", "messages", "answers", "subscriptions", "chats", "uploads"}
    | {"upload", "files"}  # the upload URLs and the attached files' URLs (not MAX's API host)
)
_UPLOAD_TYPES = frozenset({"image", "video", "audio", "file"})
_ALONE_ATTACHMENTS = frozenset({"file", "audio"})  # schema: "MUST be the only attachment"
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

_DEFAULT_CODES = {
    400: "proto.payload",
    401: "verify.token",
    403: "chat.denied",
    404: "not.found",
    405: "method.not.allowed",
    429: "too.many.requests",
    500: "internal.error",
    502: "service.unavailable",
    503: "service.unavailable",
    504: "service.unavailable",
}


class _MaxError(_ApiError):
    """A failed call: becomes ``{"code": ..., "message": ...}`` with status ``status``.

    ``retry_after`` (injected faults only) becomes a ``Retry-After`` header.
    """

    def __init__(
        self, status: int, code: str, message: str, retry_after: int | None = None
    ) -> None:
        super().__init__(status, message, retry_after)
        self.code = code

    def payload(self) -> JsonDict:
        return {"code": self.code, "message": self.description}


def _bad_request(message: str) -> _MaxError:
    return _MaxError(400, "proto.payload", message)


def _not_found(message: str) -> _MaxError:
    return _MaxError(404, "not.found", message)


# --------------------------------------------------------------------------------------------
# Text: MAX's HTML subset
# --------------------------------------------------------------------------------------------

# Tags MAX recognises (schema.yaml, "HTML support"); all others are stripped, their text kept.
_HTML_MARKUP = {
    "b": "strong",
    "strong": "strong",
    "i": "emphasized",
    "em": "emphasized",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "del": "strikethrough",
    "code": "monospaced",
    "pre": "monospaced",
    "mark": "highlighted",
    "h1": "heading",
    "blockquote": "quote",
    "a": "link",
}


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class _HtmlToMarkup(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.units = 0
        self.open: list[tuple[str, int, str | None]] = []
        self.markup: list[JsonDict] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.handle_data("\n")
        elif tag in _HTML_MARKUP:
            self.open.append((tag, self.units, dict(attrs).get("href")))

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.open) - 1, -1, -1):
            if self.open[index][0] == tag:
                self._close(*self.open.pop(index))
                return

    def handle_data(self, data: str) -> None:
        self.parts.append(data)
        self.units += _utf16_length(data)

    def close(self) -> None:
        super().close()
        while self.open:  # unclosed tags run to the end, leniently
            self._close(*self.open.pop())

    def _close(self, tag: str, start: int, href: str | None) -> None:
        if self.units > start:
            element: JsonDict = {
                "type": _HTML_MARKUP[tag],
                "from": start,
                "length": self.units - start,
            }
            if tag == "a":
                element["url"] = href or ""
            self.markup.append(element)


def parse_max_html(source: str) -> tuple[str, list[JsonDict]]:
    """Plain text and ``markup`` (UTF-16 ``from``/``length``) of a ``format=html`` text."""
    parser = _HtmlToMarkup()
    parser.feed(source)
    parser.close()
    parser.markup.sort(key=lambda element: (element["from"], -element["length"]))
    return "".join(parser.parts), parser.markup


# --------------------------------------------------------------------------------------------
# Public records
# --------------------------------------------------------------------------------------------


@dataclass
class Message:
    """A message in a dialog of the double, as it currently is (after edits/deletes).

    ``text`` is what the user sees (HTML tags removed, ``markup`` beside it); ``source`` is the
    text as the bot sent it and ``format`` its format (None for user messages). ``attachments``
    are as MAX returns them: an ``inline_keyboard`` attachment carries its ``callback_id``.
    """

    mid: str
    seq: int
    chat_id: int
    user_id: int
    from_bot: bool
    text: str
    timestamp: int
    source: str | None = None
    format: str | None = None
    markup: list[JsonDict] = field(default_factory=list)
    attachments: list[JsonDict] = field(default_factory=list)
    reply_to: str | None = None
    notify: bool = True
    edited: bool = False
    deleted: bool = False

    @property
    def keyboard(self) -> list[list[JsonDict]] | None:
        """The inline keyboard's rows of buttons, None if the message has none."""
        for attachment in self.attachments:
            if attachment["type"] == "inline_keyboard":
                return attachment["payload"]["buttons"]  # type: ignore[no-any-return]
        return None

    @property
    def callback_id(self) -> str | None:
        """The keyboard's callback id (the one presses on it carry), None without a keyboard."""
        for attachment in self.attachments:
            if attachment["type"] == "inline_keyboard":
                return attachment["callback_id"]  # type: ignore[no-any-return]
        return None

    def buttons(self) -> list[list[str]]:
        """Labels of the inline keyboard, row by row (empty if there is none)."""
        return [[button["text"] for button in row] for row in self.keyboard or []]

    def button(self, label: str) -> JsonDict:
        """The button with exactly this label; LookupError lists the labels available."""
        for row in self.keyboard or []:
            for button in row:
                if button["text"] == label:
                    return button
        available = [text for row in self.buttons() for text in row]
        raise LookupError(f"no button {label!r} in message {self.mid}; available: {available}")


@dataclass
class Call:
    """One request the double received, with the answer it gave.

    ``endpoint`` is ``"<METHOD> /<path>"`` with ids as placeholders (``"GET /chats/{chatId}"``);
    ``time`` is the double's ``clock`` at arrival, ``delay`` the seconds the response was held
    back by ``timeout_next``, ``via`` the ``url_for`` name the request came through.
    """

    endpoint: str
    query: dict[str, str]
    body: JsonDict | None
    time: float
    status: int
    response: JsonDict
    delay: float = 0.0
    via: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


# --------------------------------------------------------------------------------------------
# Internal state
# --------------------------------------------------------------------------------------------

DialogState = Literal["active", "stopped", "removed"]


@dataclass
class _User:
    user_id: int
    chat_id: int
    first_name: str
    last_name: str | None
    username: str | None
    locale: str | None
    last_activity_time: int
    state: DialogState = "active"

    def as_user(self) -> JsonDict:
        user: JsonDict = {
            "user_id": self.user_id,
            "first_name": self.first_name,
            "last_name": self.last_name or "",
            "is_bot": False,
            "last_activity_time": self.last_activity_time,
            "name": " ".join(part for part in (self.first_name, self.last_name) if part),
        }
        if self.username:
            user["username"] = self.username
        return user


@dataclass
class _Press:
    """One press of a callback button, answered at most once."""

    callback_id: str
    user_id: int
    mid: str
    payload: str
    timestamp: int
    delivered: bool = False
    answer: JsonDict | None = None


@dataclass
class _Queued:
    seq: int
    update: JsonDict


@dataclass
class _Subscription:
    url: str
    secret: str | None
    update_types: list[str] | None
    version: str | None
    time: int

    def as_json(self) -> JsonDict:
        return {
            "url": self.url,
            "time": self.time,
            "update_types": self.update_types,
            "version": self.version,
        }


@dataclass
class _Upload:
    """An upload URL handed out by ``POST /uploads``, and what was uploaded to it."""

    upload_id: str
    type: str
    token: str
    file_id: int
    filename: str | None = None
    content: bytes | None = None  # None until uploaded (one file per URL)


@dataclass(frozen=True)
class UploadedFile:
    """A file the bot uploaded and attached to a message: its name and bytes."""

    filename: str
    content: bytes


@dataclass
class _Request:
    query: dict[str, str]
    body: JsonDict | None
    arg: str | None
    types: list[str]


_Handler = Callable[[_Request], JsonDict | Awaitable[JsonDict]]


def _endpoint_key(endpoint: str) -> str:
    method, _, path = endpoint.strip().partition(" ")
    return f"{method.upper()} {path.strip()}".lower()


def _response(status: int, payload: JsonDict, headers: dict[str, str]) -> web.Response:
    response = _json_response(status, payload)
    response.headers.update(headers)
    return response


# --------------------------------------------------------------------------------------------
# Request validation: message bodies and keyboards
# --------------------------------------------------------------------------------------------


def _validate_button(button: Any, where: str) -> JsonDict:
    """A button as MAX stores it (null fields dropped, callback intent defaulted)."""
    if not isinstance(button, dict) or not isinstance(button.get("type"), str):
        raise _bad_request(f"{where}: button type is required")
    kind = button["type"]
    if kind not in _BUTTON_TYPES:
        raise _bad_request(f"{where}: unknown button type '{kind}'")
    text = button.get("text")
    if not isinstance(text, str) or not 1 <= len(text) <= MAX_BUTTON_TEXT:
        raise _bad_request(f"{where}: text must be 1 to {MAX_BUTTON_TEXT} characters")
    stored = {key: value for key, value in button.items() if value is not None}
    if kind in ("callback", "clipboard"):
        payload = button.get("payload")
        if not isinstance(payload, str) or not payload:
            raise _bad_request(f"{where}: Field 'payload' cannot be null")
        if len(payload) > MAX_BUTTON_PAYLOAD:
            raise _bad_request(f"{where}: payload is longer than {MAX_BUTTON_PAYLOAD}")
    if kind == "callback":
        intent = stored.setdefault("intent", "default")
        if intent not in _INTENTS:
            raise _bad_request(f"{where}: unknown intent '{intent}'")
    if kind == "link":
        url = button.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise _bad_request(f"{where}: Field 'url' must be an http(s) URL")
        if len(url) > MAX_LINK_URL:
            raise _bad_request(f"{where}: url is longer than {MAX_LINK_URL}")
    if kind == "open_app":
        if not button.get("web_app") and button.get("contact_id") is None:
            raise _bad_request(f"{where}: Field 'webApp' cannot be null")
        payload = button.get("payload")
        if payload is not None and not (
            isinstance(payload, str) and _OPEN_APP_PAYLOAD_RE.fullmatch(payload)
        ):
            raise _bad_request(f"{where}: payload must match ^[\\w-]{{0,512}}$")
    if kind == "chat" and not button.get("chat_title"):
        raise _bad_request(f"{where}: Field 'chat_title' cannot be null")
    return stored


def _validate_keyboard(payload: Any) -> list[list[JsonDict]]:
    """Rows of an ``inline_keyboard`` attachment, within MAX's limits (keyboard page)."""
    rows = payload.get("buttons") if isinstance(payload, dict) else None
    if not isinstance(rows, list) or not rows or not all(isinstance(row, list) for row in rows):
        raise _bad_request("inline_keyboard: buttons must be a non-empty array of rows")
    if len(rows) > MAX_ROWS:
        raise _bad_request(f"inline_keyboard: more than {MAX_ROWS} rows")
    if sum(len(row) for row in rows) > MAX_BUTTONS:
        raise _bad_request(f"inline_keyboard: more than {MAX_BUTTONS} buttons")
    validated: list[list[JsonDict]] = []
    for number, row in enumerate(rows, start=1):
        if not row:
            raise _bad_request(f"inline_keyboard: row {number} is empty")
        buttons = [
            _validate_button(button, f"row {number}, button {position}")
            for position, button in enumerate(row, start=1)
        ]
        wide = any(button["type"] in _WIDE_BUTTONS for button in buttons)
        limit = MAX_WIDE_ROW_BUTTONS if wide else MAX_ROW_BUTTONS
        if len(buttons) > limit:
            raise _bad_request(f"inline_keyboard: more than {limit} buttons in row {number}")
        validated.append(buttons)
    return validated


def _validate_attachments(attachments: Any) -> list[JsonDict]:
    """Attachments as MAX stores them; the keyboard gets its ``callback_id`` later."""
    if not isinstance(attachments, list):
        raise _bad_request("attachments must be an array")
    stored: list[JsonDict] = []
    for attachment in attachments:
        if not isinstance(attachment, dict) or attachment.get("type") not in _ATTACHMENT_TYPES:
            raise _bad_request(f"unknown attachment: {attachment!r}")
        if attachment["type"] == "inline_keyboard":
            if any(item["type"] == "inline_keyboard" for item in stored):
                raise _bad_request("only one inline_keyboard attachment is allowed")
            rows = _validate_keyboard(attachment.get("payload"))
            stored.append({"type": "inline_keyboard", "payload": {"buttons": rows}})
        else:
            stored.append(copy.deepcopy(attachment))
    alone = [item["type"] for item in stored if item["type"] in _ALONE_ATTACHMENTS]
    if alone and len(stored) > 1:
        raise _bad_request(f"{alone[0]} must be the only attachment in message")
    return stored


@dataclass
class _Body:
    """A validated NewMessageBody; ``None`` fields were left out (or null)."""

    source: str | None
    format: str | None
    attachments: list[JsonDict] | None
    reply_to: str | None
    notify: bool

    def rendered(self) -> tuple[str, list[JsonDict]]:
        source = self.source or ""
        return parse_max_html(source) if self.format == "html" else (source, [])


def _parse_body(body: Any) -> _Body:
    if not isinstance(body, dict):
        raise _bad_request("request body must be a JSON object")
    source = body.get("text")
    if source is not None and not isinstance(source, str):
        raise _bad_request("text must be a string")
    if source is not None and len(source) > MAX_TEXT_LENGTH:
        raise _bad_request(f"text: size must be between 0 and {MAX_TEXT_LENGTH}")
    text_format = body.get("format")
    if text_format not in (None, "html", "markdown"):
        raise _bad_request(f"unknown format '{text_format}': use html or markdown")
    attachments = body.get("attachments")
    link = body.get("link")
    reply_to = None
    if link is not None:
        if not isinstance(link, dict) or link.get("type") not in ("reply", "forward"):
            raise _bad_request("link: type must be reply or forward")
        if not isinstance(link.get("mid"), str):
            raise _bad_request("link: Field 'mid' cannot be null")
        reply_to = link["mid"] if link["type"] == "reply" else None
    return _Body(
        source=source,
        format=text_format,
        attachments=None if attachments is None else _validate_attachments(attachments),
        reply_to=reply_to,
        notify=body.get("notify") is not False,
    )


# --------------------------------------------------------------------------------------------
# The double
# --------------------------------------------------------------------------------------------


class FakeMaxAPI(RecordingServer[Call]):
    """A MAX Bot API server for tests, with users the test can act as.

    Start it (``await api.start()`` or ``async with FakeMaxAPI() as api``) and point maxapi at
    ``api.url`` with ``bot.set_api_url(api.url)``. Requests carry the token in the
    ``Authorization`` header, without ``Bearer``; a token passed only as ``access_token`` in the
    query gets 401, as MAX no longer reads it there. Successful answers are the method's JSON;
    failures ``{"code", "message"}``.
    """

    _reserved_names = _ROOTS
    _client_max_size = UPLOAD_MAX_BYTES  # uploads come here too

    def __init__(
        self,
        token: str = "f9LHodD0cOJ-test-max-token",
        *,
        bot_id: int = 229229229,
        bot_username: str = "dpo_test_bot",
        bot_name: str = "Тестовый бот",
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        poll_timeout: float = 30.0,
    ) -> None:
        """Create a stopped double.

        :param token: the only token accepted (others get 401).
        :param bot_id: the bot's ``user_id`` (in ``/me`` and as ``sender`` of its messages).
        :param clock: monotonic seconds for rate limits and ``Call.time``.
        :param wall_clock: Unix seconds for timestamps (milliseconds in payloads).
        :param poll_timeout: seconds a ``GET /updates`` without ``timeout`` waits (MAX: 30).
        """
        super().__init__()
        self.token = token
        self.bot_id = bot_id
        self.bot_username = bot_username
        self.bot_name = bot_name
        self.poll_timeout = poll_timeout
        self._clock = clock
        self._wall_clock = wall_clock

        self.too_many_requests = 0
        """Number of 429 answers given (rate limiter and injected ones)."""
        self.webhook_timeout = 10.0
        """Seconds ``deliver_webhook`` waits for the bot's webhook to answer."""
        self.webhook_error: tuple[int, int] | None = None
        """(timestamp ms, HTTP status) of the last failed webhook delivery."""
        self.dropped_subscriptions: list[str] = []
        """Webhook URLs the double unsubscribed after 8 hours without a 200, as MAX does."""
        self.long_polls_waiting = 0
        """``GET /updates`` waiting for an update (or their timeout) right now; a client that
        gives up on one does not end it (the double answers into the void, as a server does)."""
        self.commands: list[JsonDict] | None = None
        """The bot's commands (``PATCH /me/commands``), one list for every dialog; None: unset."""
        self.new_chat_after_removal = False
        """A dialog removed and started again gets a new ``chat_id`` (sends to the old one are
        refused with ``dialog.not.found``); off: the same ``chat_id`` again. Which MAX does is
        *unverified*."""
        self._dead_chats: set[int] = set()
        self.unmarked_poll_gives_last_only = False
        """A ``GET /updates`` without ``marker`` returns only the latest update and confirms
        those before it (lost), as dev.max.ru now says (*unverified*); off: the schema's reading,
        every unconfirmed update."""

        self._users: dict[int, _User] = {}
        self._users_by_chat: dict[int, _User] = {}
        self._messages: dict[str, Message] = {}
        self._next_chat_id = 70_000_000_001
        self._seq_counter = 0
        self._last_timestamp = 0
        self._updates: list[_Queued] = []
        self._next_marker = 1
        self._committed = 1
        self._presses: list[_Press] = []
        self._notifications: dict[int, list[str]] = {}
        self._subscriptions: dict[str, _Subscription] = {}
        self._uploads: dict[str, _Upload] = {}  # by upload id
        self._upload_tokens: dict[str, _Upload] = {}  # by token
        self._faults: list[_Rule] = []
        self._delays: list[_Rule] = []
        self._windows: dict[tuple[str, int], _SlidingWindow] = {}
        self._overall_window: _SlidingWindow | None = None
        self._per_chat_rate: float | None = 2
        self._answers_rate: float | None = 2
        self._routes: dict[str, _Handler] = {
            "GET /me": self._get_me,
            "PATCH /me/commands": self._set_commands,
            "GET /updates": self._get_updates,
            "POST /messages": self._send_message,
            "PUT /messages": self._edit_message,
            "DELETE /messages": self._delete_message,
            "GET /messages": self._get_messages,
            "GET /messages/{messageId}": self._get_message,
            "POST /answers": self._answer,
            "POST /uploads": self._upload_url,
            "GET /subscriptions": self._get_subscriptions,
            "POST /subscriptions": self._subscribe,
            "DELETE /subscriptions": self._unsubscribe,
            "GET /chats/{chatId}": self._get_chat,
        }

    # -- acting as users -------------------------------------------------------------------

    def add_user(
        self,
        user_id: int,
        first_name: str = "Иван",
        last_name: str | None = None,
        username: str | None = None,
        *,
        chat_id: int | None = None,
        locale: str | None = "ru",
    ) -> int:
        """Register a user who has a dialog with the bot; returns the dialog's ``chat_id``.

        The dialog's id is not the user id (MAX keeps them apart): give ``chat_id`` or one is
        allocated. Call ``start_bot`` to model the user pressing «Начать» / following a deep link.
        """
        if user_id in self._users:
            raise ValueError(f"user {user_id} already exists")
        if chat_id is None:
            while self._next_chat_id in self._users_by_chat or self._next_chat_id in self._users:
                self._next_chat_id += 1
            chat_id = self._next_chat_id
            self._next_chat_id += 1
        if chat_id in self._users_by_chat:
            raise ValueError(f"chat {chat_id} already belongs to a user")
        user = _User(user_id, chat_id, first_name, last_name, username, locale, self._now_ms())
        self._users[user_id] = user
        self._users_by_chat[chat_id] = user
        return chat_id

    def chat_id_of(self, user_id: int) -> int:
        """The ``chat_id`` of the user's dialog with the bot."""
        return self._user(user_id).chat_id

    def send_text(self, user_id: int, text: str) -> JsonDict:
        """The user sends ``text``; queues and returns the ``message_created`` update.

        A user who stopped the bot or removed the dialog restarts it first (the client's
        «Начать»), which queues ``bot_started`` before the message (*unverified* order).
        """
        if not text:
            raise ValueError("MAX clients cannot send an empty message")
        return self._user_message(user_id, text, [])

    def send_media(self, user_id: int, kind: str) -> JsonDict:
        """The user sends a message without text: ``kind`` is ``photo``, ``voice``, ``sticker``
        or ``document`` (Telegram's words, so that a test says the same for both doubles), as
        MAX's attachment of that kind (schema: PhotoAttachment ``image``, AudioAttachment
        ``audio``, StickerAttachment ``sticker``, FileAttachment ``file``); no caption."""
        self._user(user_id)  # a known user
        media: dict[str, JsonDict] = {
            "photo": {
                "type": "image",
                "payload": {"photo_id": 1, "token": "ph1", "url": "https://i.max.ru/ph1"},
            },
            "voice": {"type": "audio", "payload": {"url": "https://a.max.ru/vo1", "token": "vo1"}},
            "sticker": {
                "type": "sticker",
                "payload": {"url": "https://s.max.ru/st1", "code": "st1"},
                "width": 512,
                "height": 512,
            },
            "document": {
                "type": "file",
                "payload": {"url": "https://f.max.ru/do1", "token": "do1"},
                "filename": "a.pdf",
                "size": 1024,
            },
        }
        if kind not in media:
            raise ValueError(f"unknown kind of message: {kind}")
        return self._user_message(user_id, "", [media[kind]])

    def _user_message(self, user_id: int, text: str, attachments: list[JsonDict]) -> JsonDict:
        """Store the user's message and queue its ``message_created``; a user who stopped the
        bot or removed the dialog restarts it first."""
        user = self._user(user_id)
        if user.state != "active":
            self.start_bot(user_id)
        message = self._store(
            Message(
                mid="",
                seq=0,
                chat_id=user.chat_id,
                user_id=user_id,
                from_bot=False,
                text=text,
                timestamp=self._touch(user),
                attachments=attachments,
            )
        )
        return self._queue(
            {
                "update_type": "message_created",
                "timestamp": message.timestamp,
                "message": self._message_json(message),
                "user_locale": user.locale,
            }
        )

    def rename_user(self, user_id: int, first_name: str, username: str | None = None) -> None:
        """The user changes their name (a first name only now) or username; their next updates
        carry the new one."""
        user = self._user(user_id)
        user.first_name, user.last_name, user.username = first_name, None, username

    def press(self, user_id: int, label: str, mid: str | None = None) -> JsonDict:
        """The user presses the button labelled exactly ``label``.

        Looks in message ``mid`` if given, else in the newest bot message of the dialog that
        has such a button. A callback button queues and returns ``message_callback``; a
        ``message`` button sends its text as the user (``message_created``), as MAX clients do.
        Raises LookupError, listing the labels available, if there is no such button or it is a
        button the bot never hears about (link, open_app, request_*, clipboard).
        """
        user = self._user(user_id)
        if mid is not None:
            candidates = [self._require_message(user_id, mid)]
        else:
            candidates = [m for m in reversed(self.chat(user_id)) if m.from_bot and m.keyboard]
        for message in candidates:
            button = next(
                (b for row in message.keyboard or [] for b in row if b["text"] == label), None
            )
            if button is not None:
                break
        else:
            available = [text for m in candidates for row in m.buttons() for text in row]
            where = f"message {mid}" if mid is not None else "any bot message"
            raise LookupError(
                f"no button {label!r} in {where} of user {user_id}; available: {available}"
            )
        if button["type"] == "message":
            return self.send_text(user_id, button["text"])
        if button["type"] != "callback":
            raise LookupError(
                f"button {label!r} of message {message.mid} does not reach the bot: {button}"
            )
        if user.state != "active":
            self.start_bot(user_id)
        return self._queue_press(user, message, button["payload"])

    def press_payload(self, user_id: int, payload: str, mid: str) -> JsonDict:
        """Queue a ``message_callback`` with a forged ``payload`` on message ``mid``."""
        message = self._require_message(user_id, mid)
        if message.callback_id is None:
            raise LookupError(f"message {mid} has no keyboard to press")
        return self._queue_press(self._user(user_id), message, payload)

    def start_bot(self, user_id: int, payload: str | None = None) -> JsonDict:
        """The user presses «Начать» or follows ``https://max.ru/<bot>?start=<payload>``.

        Queues and returns ``bot_started``; its ``payload`` is left out when longer than 128
        characters (MAX omits it). A stopped or removed dialog becomes active again (a removed
        one under a new ``chat_id`` with ``new_chat_after_removal``).
        """
        user = self._user(user_id)
        if user.state == "removed" and self.new_chat_after_removal:
            self._dead_chats.add(user.chat_id)
            del self._users_by_chat[user.chat_id]
            while self._next_chat_id in self._users_by_chat or self._next_chat_id in self._users:
                self._next_chat_id += 1
            user.chat_id = self._next_chat_id
            self._next_chat_id += 1
            self._users_by_chat[user.chat_id] = user
        user.state = "active"
        update: JsonDict = {
            "update_type": "bot_started",
            "timestamp": self._touch(user),
            "chat_id": user.chat_id,
            "user": user.as_user(),
            "user_id": user.user_id,
            "user_locale": user.locale,
        }
        if payload is not None and len(payload) <= MAX_START_PAYLOAD:
            update["payload"] = payload
        return self._queue(update)

    def stop_bot(self, user_id: int) -> JsonDict | None:
        """The user stops (blocks) the bot: later sends and edits get 403 ``chat.denied``.

        Queues and returns ``bot_stopped``; None if the bot was already stopped.
        """
        user = self._user(user_id)
        if user.state == "stopped":
            return None
        user.state = "stopped"
        return self._queue_dialog_event(user, "bot_stopped")

    def remove_dialog(self, user_id: int) -> JsonDict | None:
        """The user deletes the dialog: its messages are gone and sends are refused with
        ``dialog.not.found`` until the user comes back (*unverified*). Queues and returns
        ``dialog_removed``; None if it was already removed."""
        user = self._user(user_id)
        if user.state == "removed":
            return None
        user.state = "removed"
        for message in self.chat(user_id):
            message.deleted = True
        return self._queue_dialog_event(user, "dialog_removed")

    def queue_update(self, update: JsonDict) -> JsonDict:
        """Queue `update` as it is, however malformed (what MAX might send one day)."""
        return self._queue(copy.deepcopy(update))

    def polled(self) -> bool:
        """A ``GET /updates`` is waiting or was answered: the bot polls. (A call is recorded
        when it is answered: a long poll only once it ends, up to its timeout later.)"""
        return self.long_polls_waiting > 0 or bool(self.calls_of("GET /updates"))

    def pending_updates(self) -> list[JsonDict]:
        """Queued updates not yet confirmed (by a later marker, a webhook 200, take_updates)."""
        return [copy.deepcopy(queued.update) for queued in self._updates]

    def take_updates(self) -> list[JsonDict]:
        """Confirm and return all queued updates (to feed a handler in-process)."""
        taken = [queued.update for queued in self._updates]
        self._mark_delivered(taken)
        self._commit(self._next_marker)
        return taken

    # -- inspecting ------------------------------------------------------------------------

    def chat(self, user_id: int) -> list[Message]:
        """The dialog's current messages (user's and bot's) in order; deleted ones left out."""
        chat_id = self._user(user_id).chat_id
        return [m for m in self._messages.values() if m.chat_id == chat_id and not m.deleted]

    def message(self, mid: str) -> Message:
        """One message, deleted or not; LookupError if it never existed."""
        try:
            return self._messages[mid]
        except KeyError:
            raise LookupError(f"no message {mid}") from None

    def last_bot_message(self, user_id: int) -> Message:
        """The newest (not deleted) message the bot sent to the user's dialog."""
        for message in reversed(self.chat(user_id)):
            if message.from_bot:
                return message
        raise LookupError(f"the bot has no messages in the dialog with user {user_id}")

    def file(self, mid: str) -> UploadedFile:
        """The file attached to message ``mid`` (its uploaded bytes); LookupError if none."""
        for attachment in self.message(mid).attachments:
            if attachment["type"] == "file":
                upload = self._upload_tokens[attachment["payload"]["token"]]
                assert upload.filename is not None
                assert upload.content is not None
                return UploadedFile(upload.filename, upload.content)
        raise LookupError(f"message {mid} has no file attached")

    def calls_of(self, endpoint: str) -> list[Call]:
        """Recorded calls of one endpoint, e.g. ``"POST /messages"`` (method case-insensitive)."""
        key = _endpoint_key(endpoint)
        return [call for call in self.calls if _endpoint_key(call.endpoint) == key]

    def unanswered_callbacks(self) -> list[str]:
        """Callback ids of presses delivered to the bot and not answered (one per press)."""
        return [p.callback_id for p in self._presses if p.delivered and p.answer is None]

    def callback_answers(self, callback_id: str) -> list[JsonDict]:
        """The ``POST /answers`` bodies given for presses with this callback id, in order."""
        return [
            copy.deepcopy(p.answer)
            for p in self._presses
            if p.callback_id == callback_id and p.answer is not None
        ]

    def notifications(self, user_id: int) -> list[str]:
        """One-time notifications (``POST /answers`` ``notification``) the user was shown."""
        return list(self._notifications.get(user_id, []))

    @property
    def subscriptions(self) -> list[JsonDict]:
        """Current webhook subscriptions (with their secrets), oldest first."""
        return [
            {**subscription.as_json(), "secret": subscription.secret}
            for subscription in self._subscriptions.values()
        ]

    # -- fault injection -------------------------------------------------------------------

    def fail_next(
        self,
        endpoint: str,
        *,
        status: int,
        code: str | None = None,
        message: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
        chat_id: int | None = None,
    ) -> None:
        """Make the next ``times`` calls of ``endpoint`` (optionally only for the dialog
        ``chat_id``) fail with ``status`` and MAX's error body; the call has no effect.

        ``retry_after`` adds a ``Retry-After`` header (MAX documents none; this lets a test
        check that a client honours one if it comes).
        """

        def error() -> _MaxError:
            return _MaxError(
                status,
                code or _DEFAULT_CODES.get(status, "internal.error"),
                message or _reason(status),
                retry_after,
            )

        self._faults.append(_Rule(_endpoint_key(endpoint), chat_id, self._positive(times), error))

    def timeout_next(
        self, endpoint: str, *, seconds: float, times: int = 1, chat_id: int | None = None
    ) -> None:
        """Hold back the response of the next ``times`` calls of ``endpoint`` by ``seconds``.

        The call itself is executed (a message does get sent), as when a real request times
        out on the client side, so retries can be checked for duplicates.
        """
        key = _endpoint_key(endpoint)
        self._delays.append(_Rule(key, chat_id, self._positive(times), delay=seconds))

    def set_rate_limits(
        self,
        per_chat_per_second: float | None = 2,
        *,
        answers_per_chat_per_second: float | None = 2,
        overall_per_second: float | None = None,
    ) -> None:
        """Set the limits (None disables one); MAX's documented per-dialog ones are the default.

        ``POST`` and ``PUT /messages`` share the per-dialog window, ``POST /answers`` has its
        own; the overall one counts every call but long polls. Over a limit the call fails with
        429 ``too.many.requests`` and no Retry-After (*unverified*: MAX documents neither).
        """
        self._per_chat_rate = per_chat_per_second
        self._answers_rate = answers_per_chat_per_second
        self._overall_window = (
            None if overall_per_second is None else _SlidingWindow(overall_per_second)
        )
        self._windows.clear()

    # -- webhook delivery ------------------------------------------------------------------

    async def deliver_webhook(self) -> list[int]:
        """POST the queued updates, in order, to the one webhook subscription.

        Returns the HTTP statuses. An update leaves the queue on a 200 only (MAX counts any
        other answer as a failed delivery); on the first failure delivery stops and the update
        stays queued for the next call. If the update is 8 hours old by then, the double drops
        the subscription (``dropped_subscriptions``), as MAX does. Updates of types the
        subscription left out are skipped and confirmed.
        """
        if len(self._subscriptions) != 1:
            raise RuntimeError(
                f"deliver_webhook needs exactly one subscription, there are "
                f"{len(self._subscriptions)}"
            )
        subscription = next(iter(self._subscriptions.values()))
        statuses: list[int] = []
        while self._updates and subscription.url in self._subscriptions:
            queued = self._updates[0]
            types = subscription.update_types
            if types and queued.update["update_type"] not in types:
                self._commit(queued.seq + 1)
                continue
            status = await self.deliver_to(subscription.url, queued.update, subscription.secret)
            statuses.append(status)
            if status != 200:
                now = self._now_ms()
                self.webhook_error = (now, status)
                if now - queued.update["timestamp"] >= WEBHOOK_GIVE_UP_MS:
                    del self._subscriptions[subscription.url]
                    self.dropped_subscriptions.append(subscription.url)
                break
            self._mark_delivered([queued.update])
            self._commit(queued.seq + 1)
        return statuses

    async def deliver_to(self, url: str, update: JsonDict, secret: str | None = None) -> int:
        """POST one update to ``url`` as MAX does (``X-Max-Bot-Api-Secret`` when ``secret`` is
        given); returns the HTTP status. Connection errors propagate."""
        headers = {SECRET_HEADER: secret} if secret else {}
        async with (
            ClientSession(timeout=ClientTimeout(total=self.webhook_timeout)) as session,
            session.post(url, json=update, headers=headers) as response,
        ):
            await response.read()
            return response.status

    # -- HTTP ------------------------------------------------------------------------------

    async def _handle_request(self, request: web.Request) -> web.Response:
        parts = [part for part in request.path.split("/") if part]
        via = None
        if parts and parts[0] not in _ROOTS and len(parts) > 1:
            via, parts = parts[0], parts[1:]
        query = dict(request.query)
        if parts and parts[0] in ("upload", "files"):
            return await self._transfer(request, parts, via)
        endpoint, arg = self._route(request.method, parts)
        try:
            body = await self._read_body(request)
        except _MaxError as exc:
            call = Call(
                endpoint, query, None, self._clock(), exc.error_code, exc.payload(), via=via
            )
            self._record(call)
            return _response(call.status, call.response, {})
        params = _Request(query, body, arg, self._types(request))
        call, headers = await self._execute(request, endpoint, params, via)
        if call.delay > 0:
            await self._pause(call.delay)
        return _response(call.status, call.response, headers)

    def _route(self, method: str, parts: list[str]) -> tuple[str, str | None]:
        if len(parts) == 2 and parts[0] == "messages":
            return f"{method} /messages/{{messageId}}", parts[1]
        if len(parts) == 2 and parts[0] == "chats":
            return f"{method} /chats/{{chatId}}", parts[1]
        return f"{method} /{'/'.join(parts)}", None

    @staticmethod
    async def _read_body(request: web.Request) -> JsonDict | None:
        if not request.body_exists:
            return None
        raw = await request.text()
        if not raw.strip():
            return None
        try:
            body = json.loads(raw)
        except ValueError:
            raise _bad_request("request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise _bad_request("request body must be a JSON object")
        return body

    @staticmethod
    def _types(request: web.Request) -> list[str]:
        return [t for value in request.query.getall("types", []) for t in value.split(",") if t]

    async def _execute(
        self, request: web.Request, endpoint: str, params: _Request, via: str | None
    ) -> tuple[Call, dict[str, str]]:
        """Run one call (auth, faults, delays, limits, the handler) and record it."""
        started = self._clock()
        delay = 0.0
        headers: dict[str, str] = {}
        key = endpoint.lower()
        try:
            if request.headers.get("Authorization") != self.token:
                raise _MaxError(401, "verify.token", INVALID_TOKEN)
            handler = self._routes.get(endpoint)
            if handler is None:
                path = endpoint.split(" ", 1)[1]
                if any(route.endswith(f" {path}") for route in self._routes):
                    raise _MaxError(405, "method.not.allowed", f"Method {endpoint} is not allowed")
                raise _not_found(f"Path {path} not found")
            chat_id = self._call_chat_id(params)
            fault = _take_rule(self._faults, key, chat_id)
            if fault is not None and fault.error is not None:
                raise fault.error()
            held = _take_rule(self._delays, key, chat_id)
            delay = held.delay if held is not None else 0.0
            if endpoint != "GET /updates" and self._overall_window is not None:
                self._enforce([self._overall_window], started)
            result = handler(params)
            if asyncio.iscoroutine(result):
                result = await result
            assert isinstance(result, dict)
            status, response = 200, result
            if endpoint != "GET /updates" and self._overall_window is not None:
                self._overall_window.record(started)
        except _MaxError as exc:
            status, response = exc.error_code, exc.payload()
            if exc.retry_after is not None:
                headers["Retry-After"] = str(exc.retry_after)
        if status == 429:
            self.too_many_requests += 1
        call = Call(endpoint, params.query, params.body, started, status, response, delay, via)
        self._record(call)
        return call, headers

    def _call_chat_id(self, params: _Request) -> int | None:
        """The dialog a call concerns, for faults scoped to one chat."""
        query = params.query
        if (chat_id := _as_int(query.get("chat_id"))) is not None:
            return chat_id
        if (user_id := _as_int(query.get("user_id"))) is not None and user_id in self._users:
            return self._users[user_id].chat_id
        mid = query.get("message_id") or params.arg
        if mid is not None and mid in self._messages:
            return self._messages[mid].chat_id
        callback_id = query.get("callback_id")
        for press in self._presses:
            if press.callback_id == callback_id:
                return self._messages[press.mid].chat_id
        return None

    # -- methods: bot, chats, updates ------------------------------------------------------

    def _bot_user(self) -> JsonDict:
        return {
            "user_id": self.bot_id,
            "first_name": self.bot_name,
            "username": self.bot_username,
            "is_bot": True,
            "last_activity_time": self._last_timestamp or self._now_ms(),
            "name": self.bot_name,
        }

    def _get_me(self, params: _Request) -> JsonDict:
        return {**self._bot_user(), "description": None, "commands": copy.deepcopy(self.commands)}

    def _set_commands(self, params: _Request) -> JsonDict:
        """The bot's commands replaced (an empty list removes them, none leaves them)."""
        commands = (params.body or {}).get("commands")
        if commands is not None:
            if not isinstance(commands, list) or len(commands) > MAX_COMMANDS:
                raise _bad_request(f"commands must be an array of at most {MAX_COMMANDS}")
            for command in commands:
                name = command.get("name") if isinstance(command, dict) else None
                if not isinstance(name, str) or not _COMMAND_RE.fullmatch(name):
                    raise _bad_request(f"invalid command: {command!r}")
            self.commands = copy.deepcopy(commands)
        return {"commands": copy.deepcopy(self.commands)}

    def _get_chat(self, params: _Request) -> JsonDict:
        user = self._users_by_chat.get(_as_int(params.arg) or 0)
        if user is None or user.state == "removed":
            raise _not_found(f"Chat {params.arg} not found")
        return {
            "chat_id": user.chat_id,
            "type": "dialog",
            "status": "active",
            "last_event_time": self._last_timestamp,
            "participants_count": 2,
            "is_public": False,
            "dialog_with_user": user.as_user(),
        }

    async def _get_updates(self, params: _Request) -> JsonDict:
        """Long poll with MAX's markers.

        ``marker`` confirms every update before it; without one, the updates not yet confirmed
        come (the schema's reading; dev.max.ru now says "only the last update", *unverified*:
        ``unmarked_poll_gives_last_only``).
        The answer's ``marker`` points past the updates looked at, so passing it confirms them.
        ``timeout`` may be fractional here (MAX: integer seconds, 0..90).
        """
        query = params.query
        limit = self._int_param(query, "limit", 100, 1, 1000)
        raw_timeout = query.get("timeout")
        try:
            timeout = self.poll_timeout if raw_timeout is None else float(raw_timeout)
        except ValueError:
            raise _bad_request("timeout must be a number") from None
        if not 0 <= timeout <= 90:
            raise _bad_request("timeout must be between 0 and 90")
        if "marker" in query:
            marker = _as_int(query["marker"])
            if marker is None:
                raise _bad_request("marker must be an integer")
            self._commit(marker)
        elif self.unmarked_poll_gives_last_only and len(self._updates) > 1:
            self._commit(self._updates[-1].seq)  # those before the latest are gone
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self.long_polls_waiting += 1
        try:
            while True:
                batch, next_marker = self._scan(params.types, limit)
                remaining = deadline - loop.time()
                if self._subscriptions:
                    batch, next_marker = [], self._committed  # a webhook takes the updates
                if batch or remaining <= 0 or self._stopping.is_set():
                    break
                await self._wait_for_wakeup(remaining)
        finally:
            self.long_polls_waiting -= 1
        self._mark_delivered(batch)
        return {"updates": copy.deepcopy(batch), "marker": next_marker}

    def _scan(self, types: list[str], limit: int) -> tuple[list[JsonDict], int]:
        """Unconfirmed updates of ``types`` (all if empty), at most ``limit``, and the marker
        past the last update looked at (skipped types included, so they get confirmed)."""
        batch: list[JsonDict] = []
        next_marker = self._committed
        for queued in self._updates:
            if len(batch) == limit:
                break
            next_marker = queued.seq + 1
            if not types or queued.update["update_type"] in types:
                batch.append(queued.update)
        return batch, next_marker

    @staticmethod
    def _int_param(query: dict[str, str], name: str, default: int, low: int, high: int) -> int:
        if name not in query:
            return default
        value = _as_int(query[name])
        if value is None or not low <= value <= high:
            raise _bad_request(f"{name} must be between {low} and {high}")
        return value

    # -- methods: messages -----------------------------------------------------------------

    def _send_message(self, params: _Request) -> JsonDict:
        user = self._resolve_recipient(params.query)
        now = self._clock()
        windows = self._chat_windows("messages", self._per_chat_rate, user.chat_id)
        self._enforce(windows, now)
        body = self._body(params.body or {})
        if not body.source and not body.attachments:
            raise _bad_request("message must have text or attachments")
        self._refuse_closed_dialog(user)
        text, markup = body.rendered()
        message = self._store(
            Message(
                mid="",
                seq=0,
                chat_id=user.chat_id,
                user_id=user.user_id,
                from_bot=True,
                text=text,
                timestamp=self._now_ms(),
                source=body.source,
                format=body.format,
                markup=markup,
                attachments=self._with_callback_id(body.attachments or [], None),
                reply_to=self._reply_target(user.chat_id, body.reply_to),
                notify=body.notify,
            )
        )
        for window in windows:
            window.record(now)
        return {"message": self._message_json(message)}

    def _edit_message(self, params: _Request) -> JsonDict:
        message = self._message_to_edit(params.query.get("message_id"))
        now = self._clock()
        windows = self._chat_windows("messages", self._per_chat_rate, message.chat_id)
        self._enforce(windows, now)
        body = self._body(params.body or {})
        self._refuse_closed_dialog(self._users_by_chat[message.chat_id])
        self._apply_edit(message, body)
        for window in windows:
            window.record(now)
        return {"success": True}

    def _delete_message(self, params: _Request) -> JsonDict:
        mid = params.query.get("message_id")
        message = self._messages.get(mid or "")
        if message is None or message.deleted:
            raise _not_found(f"Message {mid} not found")
        message.deleted = True
        return {"success": True}

    def _get_messages(self, params: _Request) -> JsonDict:
        query = params.query
        count = self._int_param(query, "count", 50, 1, 100)
        wanted = [mid for mid in query.get("message_ids", "").split(",") if mid]
        chat_id = _as_int(query.get("chat_id"))
        if chat_id is None and not wanted:
            raise _bad_request("chat_id or message_ids is required")
        found = [
            m
            for m in self._messages.values()
            if not m.deleted
            and (chat_id is None or m.chat_id == chat_id)
            and (not wanted or m.mid in wanted)
        ]
        newest_first = sorted(found, key=lambda m: m.seq, reverse=True)[:count]
        return {"messages": [self._message_json(m) for m in newest_first]}

    def _get_message(self, params: _Request) -> JsonDict:
        message = self._messages.get(params.arg or "")
        if message is None or message.deleted:
            raise _not_found(f"Message {params.arg} not found")
        return self._message_json(message)

    def _answer(self, params: _Request) -> JsonDict:
        """Answer a press: edit the pressed message and/or show a one-time notification."""
        callback_id = params.query.get("callback_id", "")
        if not callback_id.strip():
            raise _bad_request("callback_id is required")
        press = next(
            (p for p in self._presses if p.callback_id == callback_id and p.answer is None), None
        )
        if press is None:
            raise _not_found("Callback not found or already answered")
        message = self._messages[press.mid]
        now = self._clock()
        windows = self._chat_windows("answers", self._answers_rate, message.chat_id)
        self._enforce(windows, now)
        answer = params.body or {}
        notification = answer.get("notification")
        if notification is not None and not isinstance(notification, str):
            raise _bad_request("notification must be a string")
        new_message = answer.get("message")
        body = None if new_message is None else self._body(new_message)
        if body is not None and body.source is None and body.attachments is None:
            body = None
        if body is None and not notification:
            raise _bad_request("answer must have a message or a notification")
        if body is not None:
            if message.deleted:
                raise _not_found(f"Message {message.mid} not found")
            self._apply_edit(message, body)
        if notification:
            self._notifications.setdefault(press.user_id, []).append(notification)
        press.answer = copy.deepcopy(answer)
        for window in windows:
            window.record(now)
        return {"success": True}

    # -- methods: uploads ------------------------------------------------------------------

    def _upload_url(self, params: _Request) -> JsonDict:
        """``POST /uploads?type=``: a URL to upload one file to (UploadEndpoint); for video and
        audio the token to attach it with comes here, for an image or a file with the upload."""
        kind = params.query.get("type")
        if kind not in _UPLOAD_TYPES:
            raise _bad_request("type must be one of image, video, audio, file")
        upload = _Upload(
            upload_id=secrets.token_hex(8),
            type=kind,
            token=secrets.token_urlsafe(48),
            file_id=len(self._uploads) + 1,
        )
        self._uploads[upload.upload_id] = upload
        self._upload_tokens[upload.token] = upload
        sig = secrets.token_hex(8)
        answer: JsonDict = {"url": f"{self.url}/upload/{upload.upload_id}?sig={sig}"}
        if kind in ("video", "audio"):
            answer["token"] = upload.token
        return answer

    async def _transfer(
        self, request: web.Request, parts: list[str], via: str | None
    ) -> web.Response:
        """The upload URLs (``POST /upload/<id>``, multipart with the file in ``data``) and the
        attached files' URLs (``GET /files/<fileId>``): not the API, so no token is needed."""
        started = self._clock()
        endpoint = f"{request.method} /{parts[0]}/{{id}}"
        summary: JsonDict | None = None
        try:
            if len(parts) != 2:
                raise _not_found(f"Path {request.path} not found")
            if parts[0] == "files":
                if request.method != "GET":
                    raise _MaxError(405, "method.not.allowed", f"Method {endpoint} is not allowed")
                found = next(
                    (u for u in self._uploads.values() if str(u.file_id) == parts[1]), None
                )
                if found is None or found.content is None:
                    raise _not_found(f"File {parts[1]} not found")
                self._record(Call(endpoint, dict(request.query), None, started, 200, {}, via=via))
                disposition = f'attachment; filename="{found.filename}"'
                return web.Response(
                    body=found.content, headers={"Content-Disposition": disposition}
                )
            if request.method != "POST":
                raise _MaxError(405, "method.not.allowed", f"Method {endpoint} is not allowed")
            upload = self._uploads.get(parts[1])
            if upload is None:
                raise _not_found("Upload URL not found")
            if upload.content is not None:
                raise _bad_request("only one file can be uploaded to an upload URL")
            if not request.content_type.startswith("multipart/"):
                raise _bad_request("this double takes multipart uploads only")
            form = await request.post()
            data = form.get("data")
            if not isinstance(data, web.FileField):
                raise _bad_request("the file goes in the multipart field 'data'")
            upload.filename = data.filename or "file"
            upload.content = data.file.read()
            summary = {"filename": upload.filename, "size": len(upload.content)}
        except _MaxError as exc:
            call = Call(
                endpoint, dict(request.query), summary, started, exc.error_code, exc.payload()
            )
            self._record(call)
            return _response(call.status, call.response, {})
        if upload.type in ("video", "audio"):
            self._record(Call(endpoint, dict(request.query), summary, started, 200, {}, via=via))
            return web.Response(text="<retval>1</retval>", content_type="application/xml")
        answer: JsonDict = (
            {"photos": {secrets.token_urlsafe(24): {"token": upload.token}}}
            if upload.type == "image"
            else {"fileId": upload.file_id, "token": upload.token}
        )
        self._record(Call(endpoint, dict(request.query), summary, started, 200, answer, via=via))
        return _response(200, answer, {})

    def _body(self, raw: Any) -> _Body:
        """A NewMessageBody, its uploaded attachments as MAX returns them (by their tokens)."""
        body = _parse_body(raw)
        if body.attachments is not None:
            body.attachments = [self._uploaded(item) for item in body.attachments]
        return body

    def _uploaded(self, attachment: JsonDict) -> JsonDict:
        kind = attachment["type"]
        payload = attachment.get("payload")
        token = payload.get("token") if isinstance(payload, dict) else None
        if kind not in _UPLOAD_TYPES or (kind == "image" and token is None):
            return attachment  # an image may come by URL (not checked by this double)
        upload = self._upload_tokens.get(token) if isinstance(token, str) else None
        if upload is None or upload.content is None or upload.type != kind:
            raise _bad_request(
                f"{kind}: Field 'payload.token' is not a token of an uploaded {kind}"
            )
        stored: JsonDict = {
            "type": kind,
            "payload": {"url": f"{self.url}/files/{upload.file_id}", "token": upload.token},
        }
        if kind == "file":
            stored |= {"filename": upload.filename, "size": len(upload.content)}
        return stored

    # -- methods: subscriptions ------------------------------------------------------------

    def _get_subscriptions(self, params: _Request) -> JsonDict:
        return {"subscriptions": [s.as_json() for s in self._subscriptions.values()]}

    def _subscribe(self, params: _Request) -> JsonDict:
        body = params.body or {}
        url = body.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise _bad_request("url must start with https://")
        if url.startswith("http://") and urlsplit(url).hostname not in _LOOPBACK_HOSTS:
            raise _bad_request("webhooks are delivered over HTTPS only")
        secret = body.get("secret")
        if secret is not None and not (isinstance(secret, str) and _SECRET_RE.fullmatch(secret)):
            raise _bad_request("secret must be 5-256 characters of A-Z, a-z, 0-9, _ and -")
        types = body.get("update_types")
        if types is not None and not (
            isinstance(types, list) and all(isinstance(t, str) for t in types)
        ):
            raise _bad_request("update_types must be an array of strings")
        self._subscriptions.pop(url, None)  # the same URL again replaces its settings
        self._subscriptions[url] = _Subscription(
            url, secret, types or None, body.get("version"), self._now_ms()
        )
        self._wakeup.set()  # a waiting long poll stops getting updates
        return {"success": True}

    def _unsubscribe(self, params: _Request) -> JsonDict:
        url = params.query.get("url")
        if not url:
            raise _bad_request("url is required")
        self._subscriptions.pop(url, None)
        return {"success": True}

    # -- helpers ---------------------------------------------------------------------------

    def _now_ms(self) -> int:
        """Milliseconds, strictly increasing, so every event has its own timestamp."""
        self._last_timestamp = max(int(self._wall_clock() * 1000), self._last_timestamp + 1)
        return self._last_timestamp

    def _touch(self, user: _User) -> int:
        user.last_activity_time = self._now_ms()
        return user.last_activity_time

    def _user(self, user_id: int) -> _User:
        try:
            return self._users[user_id]
        except KeyError:
            raise LookupError(f"unknown user {user_id}: call add_user() first") from None

    def _resolve_recipient(self, query: dict[str, str]) -> _User:
        chat_id, user_id = _as_int(query.get("chat_id")), _as_int(query.get("user_id"))
        if chat_id is not None:
            if chat_id in self._dead_chats:
                raise _MaxError(404, "dialog.not.found", DIALOG_NOT_FOUND)
            chat_user = self._users_by_chat.get(chat_id)
            if chat_user is None:
                raise _not_found(f"Chat {chat_id} not found")
            return chat_user
        if user_id is not None:
            user = self._users.get(user_id)
            if user is None:
                raise _MaxError(404, "dialog.not.found", DIALOG_NOT_FOUND)
            return user
        raise _bad_request("chat_id or user_id is required")

    @staticmethod
    def _refuse_closed_dialog(user: _User) -> None:
        if user.state == "stopped":
            raise _MaxError(403, "chat.denied", DIALOG_SUSPENDED)
        if user.state == "removed":
            raise _MaxError(404, "dialog.not.found", DIALOG_NOT_FOUND)

    def _store(self, message: Message) -> Message:
        """Give the message MAX's ``seq`` (ms << 16, as real ones run) and ``mid`` (``"mid."`` +
        chat id and seq in 16 hex digits each, as in the Go client's stubs) and keep it."""
        self._seq_counter += 1
        message.seq = (message.timestamp << 16) | (self._seq_counter & 0xFFFF)
        message.mid = f"mid.{message.chat_id & 0xFFFF_FFFF_FFFF_FFFF:016x}{message.seq:016x}"
        self._messages[message.mid] = message
        return message

    def _require_message(self, user_id: int, mid: str) -> Message:
        message = self._messages.get(mid)
        if message is None or message.deleted or message.chat_id != self.chat_id_of(user_id):
            raise LookupError(f"no message {mid} in the dialog with user {user_id}")
        return message

    def _message_to_edit(self, mid: str | None) -> Message:
        message = self._messages.get(mid or "")
        if message is None or message.deleted:
            raise _not_found(f"Message {mid} not found")
        if not message.from_bot:
            raise _MaxError(403, "chat.denied", "Only the bot's own messages can be edited")
        if message.callback_id is None and self._now_ms() - message.timestamp >= EDIT_WINDOW_MS:
            raise _bad_request("Message older than 7 days without a keyboard can't be edited")
        return message

    def _reply_target(self, chat_id: int, mid: str | None) -> str | None:
        target = self._messages.get(mid or "")
        return mid if target is not None and target.chat_id == chat_id else None

    def _with_callback_id(
        self, attachments: list[JsonDict], previous: list[JsonDict] | None
    ) -> list[JsonDict]:
        """Give a keyboard its callback id: the old one if the keyboard is unchanged."""
        old = next((a for a in previous or [] if a["type"] == "inline_keyboard"), None)
        for attachment in attachments:
            if attachment["type"] == "inline_keyboard":
                same = old is not None and old["payload"] == attachment["payload"]
                attachment["callback_id"] = (
                    old["callback_id"] if same and old else secrets.token_urlsafe(72)
                )
        return attachments

    def _apply_edit(self, message: Message, body: _Body) -> None:
        """PUT /messages semantics: null attachments keep, [] removes, a list replaces."""
        if body.source is not None:
            message.text, message.markup = body.rendered()
            message.source, message.format = body.source, body.format
        if body.attachments is not None:
            message.attachments = self._with_callback_id(body.attachments, message.attachments)
        message.edited = True

    def _message_json(self, message: Message, *, with_link: bool = True) -> JsonDict:
        """The message as MAX's Message object."""
        user = self._users_by_chat[message.chat_id]
        body: JsonDict = {"mid": message.mid, "seq": message.seq, "text": message.text}
        if message.attachments:
            body["attachments"] = copy.deepcopy(message.attachments)
        if message.markup:
            body["markup"] = copy.deepcopy(message.markup)
        data: JsonDict = {
            "recipient": {
                "chat_id": message.chat_id,
                "chat_type": "dialog",
                "user_id": user.user_id if message.from_bot else self.bot_id,
            },
            "timestamp": message.timestamp,
            "body": body,
            "sender": self._bot_user() if message.from_bot else user.as_user(),
        }
        replied = self._messages.get(message.reply_to or "")
        if with_link and replied is not None and not replied.deleted:
            inner = self._message_json(replied, with_link=False)
            data["link"] = {"type": "reply", "sender": inner["sender"], "message": inner["body"]}
        return data

    # -- rate limiting ---------------------------------------------------------------------

    def _chat_windows(self, kind: str, rate: float | None, chat_id: int) -> list[_SlidingWindow]:
        if rate is None:
            return []
        window = self._windows.get((kind, chat_id))
        if window is None:
            window = self._windows[(kind, chat_id)] = _SlidingWindow(rate)
        return [window]

    @staticmethod
    def _enforce(windows: list[_SlidingWindow], now: float) -> None:
        if any(window.retry_after(now) is not None for window in windows):
            raise _MaxError(429, "too.many.requests", TOO_MANY_REQUESTS)

    # -- update queue ----------------------------------------------------------------------

    def _queue(self, update: JsonDict) -> JsonDict:
        self._updates.append(_Queued(self._next_marker, update))
        self._next_marker += 1
        self._wakeup.set()
        return copy.deepcopy(update)

    def _queue_press(self, user: _User, message: Message, payload: str) -> JsonDict:
        assert message.callback_id is not None
        timestamp = self._touch(user)
        self._presses.append(
            _Press(message.callback_id, user.user_id, message.mid, payload, timestamp)
        )
        return self._queue(
            {
                "update_type": "message_callback",
                "timestamp": timestamp,
                "callback": {
                    "timestamp": timestamp,
                    "callback_id": message.callback_id,
                    "user": user.as_user(),
                    "payload": payload,
                },
                "message": self._message_json(message),
                "user_locale": user.locale,
            }
        )

    def _queue_dialog_event(self, user: _User, update_type: str) -> JsonDict:
        return self._queue(
            {
                "update_type": update_type,
                "timestamp": self._touch(user),
                "chat_id": user.chat_id,
                "user": user.as_user(),
                "user_locale": user.locale,
            }
        )

    def _commit(self, marker: int) -> None:
        """Confirm every update before ``marker`` (markers only move forward)."""
        if marker <= self._committed:
            return
        self._committed = min(marker, self._next_marker)
        self._updates = [queued for queued in self._updates if queued.seq >= self._committed]

    def _mark_delivered(self, updates: list[JsonDict]) -> None:
        for update in updates:
            if update["update_type"] != "message_callback":
                continue
            callback = update["callback"]
            for press in self._presses:
                if (press.callback_id, press.timestamp) == (
                    callback["callback_id"],
                    callback["timestamp"],
                ):
                    press.delivered = True
