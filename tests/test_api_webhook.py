"""Decisions made in Telegram go back to the web module: queued for the webhook with the decision
(when DPO_WEBHOOK_URL is set), then POSTed signed and retried until a 2xx."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.settings import SettingsError, load_settings
from services.clock import ManualClock
from storage.models import ApplicationEvent, OutboxMessage
from tests import factories
from tests.fakes.bot_api import FakeBotAPI
from tests.harness import BotHarness, test_settings

WEBHOOK = {"DPO_WEBHOOK_URL": "http://127.0.0.1:9/decisions", "DPO_WEBHOOK_SECRET": "s3cret"}
DIRECTOR = 1001


@pytest.fixture
async def webhook_harness(
    api: FakeBotAPI,
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    seeded: None,
) -> AsyncIterator[BotHarness]:
    async with session_factory() as session:
        session.add(factories.application(39744, 3, 10))
        await session.commit()
    harness = BotHarness(api, test_settings(api, database_url, **WEBHOOK), session_factory, clock)
    yield harness
    await harness.close()


async def webhook_rows(
    session_factory: async_sessionmaker[AsyncSession],
) -> list[tuple[str, int | None, int | None]]:
    async with session_factory() as session:
        rows = await session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.channel == "webhook")
            .order_by(OutboxMessage.id)
        )
        return [(row.kind, row.application_number, row.event_id) for row in rows]


async def test_a_director_decision_in_telegram_is_queued_for_the_web_module(
    webhook_harness: BotHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    harness = webhook_harness
    await harness.send(DIRECTOR, "/start app_39744")
    await harness.press(DIRECTOR, "✅ Одобрить")
    await harness.send(DIRECTOR, "Одобряю")
    await harness.press(DIRECTOR, "💬 Комментарии (1)")
    await harness.press(DIRECTOR, "✍️ Написать комментарий")
    await harness.send(DIRECTOR, "Ждём вас 6 сентября")
    harness.assert_no_errors()
    async with session_factory() as session:
        events = (
            await session.scalars(select(ApplicationEvent).order_by(ApplicationEvent.id))
        ).all()
    assert [(e.action, e.comment) for e in events] == [
        ("approve", "Одобряю"),
        ("comment", "Ждём вас 6 сентября"),
    ]
    assert await webhook_rows(session_factory) == [
        ("decision", 39744, events[0].id),
        ("decision", 39744, events[1].id),
    ]


async def test_without_a_webhook_url_nothing_is_queued(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession], seeded: None
) -> None:
    async with session_factory() as session:
        session.add(factories.application(39744, 3, 10))
        await session.commit()
    await harness.send(DIRECTOR, "/start app_39744")
    await harness.press(DIRECTOR, "✅ Одобрить")
    await harness.press(DIRECTOR, "Без комментария")
    harness.assert_no_errors()
    assert await webhook_rows(session_factory) == []


def test_a_webhook_url_needs_its_secret() -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(
            require_bot_token=False, _env_file=None, DPO_WEBHOOK_URL="https://dpo.example/hook"
        )
    assert error.value.lines == [
        "Ошибка настройки: DPO_WEBHOOK_SECRET не задана — нужен ключ подписи решений "
        "(HMAC-SHA256), когда задан DPO_WEBHOOK_URL; тот же ключ задаётся в модуле "
        "«Организация ДПО»"
    ]
