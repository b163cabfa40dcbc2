"""Drive the real Dispatcher as Telegram would: users act through the Bot API double, their
updates are fed to `dp.feed_update`, and the bot's requests go back to the double over HTTP."""

from __future__ import annotations

import logging
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.types import Update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.settings import Settings
from bot.telegram.bot import build_bot, build_dispatcher
from services.clock import Clock
from tests.fakes.bot_api import FakeBotAPI, Message


class ErrorLog(logging.Handler):
    """Collects what the error router logged, so a test fails on an unexpected exception."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


# SNILS_HASH_KEY of the tests' settings (at least 32 characters, as start-up demands).
SNILS_KEY = "test-snils-key-0123456789abcdefghij"


def test_settings(api: FakeBotAPI, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "BOT_TOKEN": api.token,
        "DATABASE_URL": database_url,
        "TELEGRAM_API_URL": api.url,
        "SNILS_HASH_KEY": SNILS_KEY,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


test_settings.__test__ = False  # type: ignore[attr-defined]


class BotHarness:
    def __init__(
        self,
        api: FakeBotAPI,
        settings: Settings,
        session_factory: async_sessionmaker[AsyncSession],
        clock: Clock,
    ) -> None:
        self.api = api
        self.settings = settings
        self.session_factory = session_factory
        self.clock = clock
        self.bot: Bot = build_bot(settings)
        self.dp: Dispatcher = build_dispatcher(settings, session_factory, clock)
        self.dp["bot_username"] = api.bot_username
        self.errors = ErrorLog()
        logging.getLogger("bot.conversation.runner").addHandler(self.errors)

    async def close(self) -> None:
        logging.getLogger("bot.conversation.runner").removeHandler(self.errors)
        await self.dp["runner"].close()
        await self.bot.session.close()

    async def feed_pending(self) -> int:
        """Feed every queued update to the dispatcher, in order; returns how many."""
        fed = 0
        while raw := self.api.take_updates():
            for item in raw:
                update = Update.model_validate(item, context={"bot": self.bot})
                await self.dp.feed_update(self.bot, update)
                fed += 1
        return fed

    async def send(self, user_id: int, text: str) -> Message:
        """The user writes; returns the bot's newest message in that chat afterwards."""
        self.api.send_text(user_id, text)
        await self.feed_pending()
        return self.api.last_bot_message(user_id)

    async def send_media(self, user_id: int, kind: str) -> Message:
        """The user sends a photo, a voice message, a sticker or a document."""
        self.api.send_media(user_id, kind)
        await self.feed_pending()
        return self.api.last_bot_message(user_id)

    async def press(self, user_id: int, label: str, message_id: int | None = None) -> Message:
        """The user presses a button by its label; returns the bot's newest message afterwards."""
        self.api.press(user_id, label, message_id)
        await self.feed_pending()
        return self.api.last_bot_message(user_id)

    async def press_data(self, user_id: int, data: str, message_id: int) -> None:
        self.api.press_data(user_id, data, message_id)
        await self.feed_pending()

    def last_answer(self) -> dict[str, Any]:
        """The last press's answer: its text and whether it was an alert, where given."""
        params = self.api.calls_of("answerCallbackQuery")[-1].params
        return {key: params[key] for key in ("text", "show_alert") if key in params}

    def assert_no_errors(self) -> None:
        assert not self.errors.records, [r.getMessage() for r in self.errors.records]
        assert not self.api.unanswered_callbacks(), "callbacks left unanswered"
