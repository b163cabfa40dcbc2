"""The MAX Bot API client: maxapi's `Bot` for the HTTP session, with the few calls we make.

maxapi gives the session: the token in the `Authorization` header, the Russian Trusted Root CA
that platform-api2.max.ru's certificate is issued under (maxapi/client/ssl.py), `set_api_url`
for a test double, its errors (`InvalidToken` for 401, `MaxApiError` with the status and body,
`MaxConnection`). Its own retries are off (`max_retries=0`): the outbox and the executor decide
what to retry. Messages, edits and answers go as the JSON MAX documents through `Bot.request`,
not through maxapi's typed methods: those refuse a text of exactly 4,000 characters (MAX takes
up to 4,000), and an edit through them always sends `attachments: []`; our bodies are built in
bot/max/render.py, within MAX's limits. Long polling takes maxapi's raw answer (`get_updates`).

MAX allows 2 messages (sends and edits) and 2 answers a second per dialog. The client carries
the process's pacing of each dialog (`messages`, `answers`): the replies to an update
(bot/max/effects.py) and the pushes (bot/max/sender.py) go through one client, so they take
turns instead of meeting MAX's limit together.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
from dataclasses import dataclass
from typing import Any

from aiohttp import ClientError, FormData
from maxapi import Bot
from maxapi.client.default import DefaultConnectionProperties
from maxapi.enums.http_method import HTTPMethod
from maxapi.exceptions.max import InvalidToken, MaxApiError, MaxConnection

from services.outbox import ChatPacer

JsonDict = dict[str, Any]

DEFAULT_API_URL = "https://platform-api2.max.ru"
REQUEST_TIMEOUT = 15.0  # seconds; an unanswered call may still have been carried out
SESSION_TIMEOUT = 120.0  # seconds: above the longest long poll (90 s)
UPLOAD_TIMEOUT = 60.0  # seconds for a file's bytes to reach MAX's upload service
PER_DIALOG_INTERVAL = 0.5  # seconds between two messages (or two answers) in a dialog: 2 a second


class MaxError(Exception):
    """A call MAX refused or that did not get through.

    `status` is the HTTP status (0: no answer: a connection error or a timeout); `code` and
    `text` MAX's error body (`{"code": ..., "message": ...}`), or `{"success": false, ...}` on
    a 200 (MAX answers some failures so since November 2026).
    """

    def __init__(self, status: int, code: str = "", text: str = "") -> None:
        super().__init__(f"{status} {code}: {text}".strip())
        self.status = status
        self.code = code
        self.text = text

    @property
    def transient(self) -> bool:
        """Worth trying again: no answer, or a 5xx."""
        return self.status == 0 or self.status >= 500

    @property
    def rate_limited(self) -> bool:
        return self.status == 429

    @property
    def chat_gone(self) -> bool:
        """The user stopped the bot or removed the dialog (403 `chat.denied`, `dialog.*`)."""
        lowered = f"{self.code} {self.text}".lower()
        return self.status == 403 or "dialog" in lowered or "chat.denied" in lowered


def _error_of(raw: object) -> tuple[str, str]:
    if isinstance(raw, dict):
        return str(raw.get("code", "")), str(raw.get("message", raw.get("error", "")))
    return "", str(raw)[:200]


@dataclass
class Me:
    """The bot as GET /me describes it; `username` makes the `https://max.ru/<name>` links."""

    user_id: int
    username: str
    name: str


class MaxClient:
    """The calls the MAX front end makes, through one maxapi `Bot`'s session."""

    def __init__(self, token: str, api_url: str = DEFAULT_API_URL) -> None:
        self.bot = Bot(
            token,
            default_connection=DefaultConnectionProperties(timeout=SESSION_TIMEOUT, max_retries=0),
            auto_requests=False,
            auto_check_subscriptions=False,
        )
        self.bot.set_api_url(api_url)
        # MAX's per-dialog limits, for everything this process sends to a dialog.
        self.messages = ChatPacer(PER_DIALOG_INTERVAL)  # POST and PUT /messages
        self.answers = ChatPacer(PER_DIALOG_INTERVAL)  # POST /answers

    async def close(self) -> None:
        await self.bot.close_session()

    async def call(
        self,
        method: HTTPMethod,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: JsonDict | None = None,
        seconds: float = REQUEST_TIMEOUT,
    ) -> JsonDict:
        """One call; its JSON answer, or MaxError."""
        kwargs: dict[str, Any] = {"params": params or {}}
        if body is not None:
            kwargs["json"] = body
        try:
            async with asyncio.timeout(seconds):
                answer = await self.bot.request(method, path, is_return_raw=True, **kwargs)
        except InvalidToken:
            raise MaxError(401, "verify.token", "Invalid access_token") from None
        except MaxApiError as error:
            raise MaxError(error.code, *_error_of(error.raw)) from None
        except (MaxConnection, TimeoutError) as error:
            raise MaxError(0, "network", type(error).__name__) from None
        if not isinstance(answer, dict):
            raise MaxError(200, "", "not a JSON object")
        if answer.get("success") is False:
            raise MaxError(200, *_error_of(answer))
        return answer

    async def upload_file(self, filename: str, content: bytes) -> str:
        """A file uploaded to MAX (docs/MAX.md, «Files»): `POST /uploads?type=file` gives a URL
        for one file, the bytes go to it as multipart (field `data`), and its answer's token is
        what a message attaches (`{"type": "file", "payload": {"token": ...}}`)."""
        endpoint = await self.call(HTTPMethod.POST, "/uploads", params={"type": "file"})
        url = endpoint.get("url")
        if not isinstance(url, str) or not url:
            raise MaxError(200, "", "POST /uploads gave no upload URL")
        form = FormData(quote_fields=False)
        kind = mimetypes.guess_type(filename, strict=False)[0] or "application/octet-stream"
        form.add_field("data", content, filename=filename, content_type=kind)
        try:
            # maxapi's session: the token goes along, as dev.max.ru's example sends it.
            session = await self.bot.ensure_session()
            async with (
                asyncio.timeout(UPLOAD_TIMEOUT),
                session.post(url, data=form) as response,
            ):
                status, text = response.status, await response.text()
        except (ClientError, TimeoutError) as error:
            raise MaxError(0, "network", type(error).__name__) from None
        try:
            answer = json.loads(text)
        except ValueError:
            answer = text
        if status != 200:
            raise MaxError(status, *_error_of(answer))
        token = answer.get("token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise MaxError(status, "", "the upload gave no token")
        return token

    async def me(self) -> Me:
        answer = await self.call(HTTPMethod.GET, "/me")
        return Me(
            user_id=int(answer["user_id"]),
            username=str(answer.get("username") or ""),
            name=str(answer.get("name") or answer.get("first_name") or ""),
        )

    async def send(self, body: JsonDict, chat_id: int, seconds: float = REQUEST_TIMEOUT) -> str:
        """POST /messages to the dialog `chat_id`; the new message's mid."""
        answer = await self.call(
            HTTPMethod.POST, "/messages", params={"chat_id": chat_id}, body=body, seconds=seconds
        )
        message = answer.get("message") or {}
        return str((message.get("body") or {}).get("mid", ""))

    async def edit(self, mid: str, body: JsonDict) -> None:
        await self.call(HTTPMethod.PUT, "/messages", params={"message_id": mid}, body=body)

    async def delete(self, mid: str) -> None:
        await self.call(HTTPMethod.DELETE, "/messages", params={"message_id": mid})

    async def answer(
        self, callback_id: str, *, message: JsonDict | None = None, notification: str | None = None
    ) -> None:
        """POST /answers: the pressed message replaced by `message`, and/or a one-time
        `notification`; MAX refuses an answer with neither."""
        body: JsonDict = {}
        if message is not None:
            body["message"] = message
        if notification:
            body["notification"] = notification
        await self.call(HTTPMethod.POST, "/answers", params={"callback_id": callback_id}, body=body)

    async def updates(
        self, marker: int | None, *, wait: int, limit: int = 100, types: list[str] | None = None
    ) -> tuple[list[JsonDict], int | None]:
        """GET /updates: the updates after `marker` (which confirms those before it), and the
        marker that would confirm these."""
        params: dict[str, Any] = {"timeout": wait, "limit": limit}
        if marker is not None:
            params["marker"] = marker
        if types:
            params["types"] = ",".join(types)
        answer = await self.call(HTTPMethod.GET, "/updates", params=params, seconds=wait + 15)
        updates = [u for u in answer.get("updates") or [] if isinstance(u, dict)]
        next_marker = answer.get("marker")
        return updates, int(next_marker) if isinstance(next_marker, int) else marker

    async def set_commands(self, commands: list[tuple[str, str]]) -> None:
        """PATCH /me/commands: the bot's commands (name, description), one list for every
        dialog (MAX has no per-dialog list)."""
        body = {"commands": [{"name": name, "description": text} for name, text in commands]}
        await self.call(HTTPMethod.PATCH, "/me/commands", body=body)

    async def subscribe(self, url: str, secret: str, types: list[str]) -> None:
        body = {"url": url, "secret": secret, "update_types": types}
        await self.call(HTTPMethod.POST, "/subscriptions", body=body)

    async def subscriptions(self) -> list[str]:
        answer = await self.call(HTTPMethod.GET, "/subscriptions")
        return [str(s["url"]) for s in answer.get("subscriptions") or [] if "url" in s]

    async def unsubscribe(self, url: str) -> None:
        await self.call(HTTPMethod.DELETE, "/subscriptions", params={"url": url})
