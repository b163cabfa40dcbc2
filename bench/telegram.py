"""Telegram without the network, for measuring only our cost per update: an in-process session
that answers every Bot API call with a canned response (like aiogram's tests/mocked_bot.py), and
builders of the updates Telegram would send.

The session does what aiogram's AiohttpSession does around the HTTP request: it serialises the
method's parameters (`prepare_value`) and parses and checks a Telegram-shaped JSON response
(`check_response`), so that the bot and the floor pay the same client-side costs.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from collections.abc import AsyncGenerator
from typing import Any

from aiogram import Bot
from aiogram.client.session.base import BaseSession
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import Update

BOT_ID = 42
BOT_USERNAME = "dpo_bench_bot"
BOT_TOKEN = f"{BOT_ID}:BENCHMARK"
BOT_USER = {"id": BOT_ID, "is_bot": True, "first_name": "DPO", "username": BOT_USERNAME}


def private_chat(user_id: int) -> dict[str, Any]:
    return {"id": user_id, "type": "private", "first_name": "Пользователь"}


def user(user_id: int) -> dict[str, Any]:
    return {"id": user_id, "is_bot": False, "first_name": "Пользователь", "language_code": "ru"}


class RecordingSession(BaseSession):
    """Answers every call at once with what Telegram would answer on success; counts calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()
        self._message_ids = itertools.count(1_000)

    async def close(self) -> None:
        return None

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109 - aiogram's BaseSession interface
    ) -> TelegramType:
        files: dict[str, Any] = {}
        params = {
            key: prepared
            for key, value in method.model_dump(warnings=False).items()
            if (prepared := self.prepare_value(value, bot=bot, files=files))
        }
        name = method.__api_method__
        self.calls[name] += 1
        content = json.dumps({"ok": True, "result": self._result(name, params)})
        response = self.check_response(bot=bot, method=method, status_code=200, content=content)
        return response.result  # type: ignore[return-value]

    def _result(self, name: str, params: dict[str, Any]) -> Any:
        if name == "getMe":
            return BOT_USER
        if name in ("sendMessage", "editMessageText"):
            chat_id = int(params["chat_id"])
            message_id = (
                int(params["message_id"]) if "message_id" in params else next(self._message_ids)
            )
            message: dict[str, Any] = {
                "message_id": message_id,
                "from": BOT_USER,
                "chat": private_chat(chat_id),
                "date": int(time.time()),
                "text": params.get("text", ""),
            }
            if "reply_markup" in params:
                message["reply_markup"] = json.loads(params["reply_markup"])
            return message
        return True

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,  # noqa: ASYNC109 - aiogram's BaseSession interface
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:  # pragma: no cover - the bot downloads nothing
        yield b""


class Updates:
    """Builds Update objects as they arrive from Telegram, with increasing update ids."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self._ids = itertools.count(1)
        self._queries = itertools.count(1)

    def message(self, user_id: int, text: str, message_id: int = 1) -> Update:
        message: dict[str, Any] = {
            "message_id": message_id,
            "from": user(user_id),
            "chat": private_chat(user_id),
            "date": int(time.time()),
            "text": text,
        }
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return self._update({"message": message})

    def callback(self, user_id: int, data: str, message_id: int = 2) -> Update:
        query = {
            "id": str(next(self._queries)),
            "from": user(user_id),
            "message": {
                "message_id": message_id,
                "from": BOT_USER,
                "chat": private_chat(user_id),
                "date": int(time.time()),
                "text": "…",
            },
            "chat_instance": str(user_id),
            "data": data,
        }
        return self._update({"callback_query": query})

    def _update(self, payload: dict[str, Any]) -> Update:
        raw = {"update_id": next(self._ids), **payload}
        return Update.model_validate(raw, context={"bot": self.bot})
