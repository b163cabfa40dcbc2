"""Drive the MAX front end as MAX would: users act through the MAX Bot API double, their
updates go through the real translation and runner (bot/max/feed.py), and the bot's calls go
back to the double over HTTP through maxapi's session."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.conversation.receipts import Receipt
from bot.conversation.runner import Runner
from bot.conversation.stores import build_runner
from bot.max.client import MaxClient
from bot.max.feed import MaxFeed
from bot.settings import Settings
from services.clock import Clock
from tests.fakes.max_api import FakeMaxAPI, Message
from tests.harness import SNILS_KEY, Harness


def max_settings(api: FakeMaxAPI, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "MAX_BOT_TOKEN": api.token,
        "MAX_API_URL": api.url,
        "DATABASE_URL": database_url,
        "SNILS_HASH_KEY": SNILS_KEY,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class MaxHarness(Harness):
    api: FakeMaxAPI
    LOGGERS = ("bot.conversation.runner", "bot.max.feed")
    UNANSWERED = "presses left unanswered"

    def __init__(
        self,
        api: FakeMaxAPI,
        settings: Settings,
        session_factory: async_sessionmaker[AsyncSession],
        clock: Clock,
    ) -> None:
        super().__init__(api, settings, session_factory, clock)
        self.client = MaxClient(api.token, api.url)
        self.runner: Runner = build_runner(settings, session_factory, clock)
        self.feed = MaxFeed(self.runner, self.client, api.bot_id)

    async def close(self) -> None:
        await super().close()
        await self.runner.close()
        await self.client.close()

    async def feed_pending(self) -> list[Receipt]:
        """Feed every queued update, in order; their receipts."""
        receipts = []
        while raw := self.api.take_updates():
            for update in raw:
                receipts.append(await self.feed(update))
        return receipts

    async def send(self, user_id: int, text: str) -> Message:
        self.api.send_text(user_id, text)
        return await self.newest_after(user_id)

    async def start(self, user_id: int, payload: str | None = None) -> Message:
        self.api.start_bot(user_id, payload)
        return await self.newest_after(user_id)

    async def press(self, user_id: int, label: str, mid: str | None = None) -> Message:
        self.api.press(user_id, label, mid)
        return await self.newest_after(user_id)
