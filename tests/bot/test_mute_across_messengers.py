"""Muting is the person's, and so is the moment it began (`accounts.muted_at`): muted in
Telegram and unmuted in MAX, the summary of what changed meanwhile still comes; logging out of
the messenger where pushes were muted does not lose it. Through the real Telegram Dispatcher
and the real MAX front end over one database."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.clock import ManualClock
from storage.models import Account
from tests import factories
from tests.director_data import LISTENER, NEWEST_NEW, seed_applications
from tests.fakes.max_api import FakeMaxAPI
from tests.harness import BotHarness
from tests.max_harness import MaxHarness

DIRECTOR, DIRECTOR_TELEGRAM = 1, 1001
DIRECTOR_MAX = factories.user_id_of(DIRECTOR_TELEGRAM, "max")  # bound in both
SUMMARY = "Пока уведомления были выключены (с 01.09.2026 11:00):"


@pytest.fixture(autouse=True)
async def school(
    seeded: None, max_api: FakeMaxAPI, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await seed_applications(session_factory)
    async with session_factory() as session:
        chat_id = max_api.chat_id_of(DIRECTOR_MAX)
        session.add(factories.binding(DIRECTOR, DIRECTOR_MAX, messenger="max", chat_id=chat_id))
        await session.commit()


async def muted_at(session_factory: async_sessionmaker[AsyncSession]) -> object:
    async with session_factory() as session:
        account = await session.get(Account, DIRECTOR)
        assert account is not None
        return account.muted_at


async def applicant_cancels(harness: BotHarness) -> None:
    await harness.send(LISTENER, f"/start app_{NEWEST_NEW}")
    await harness.press(LISTENER, "❌ Отменить")
    await harness.press(LISTENER, "Да, отменить")
    await harness.press(LISTENER, "Без комментария")


async def test_muted_in_telegram_unmuted_in_max_the_summary_comes(
    harness: BotHarness,
    max_harness: MaxHarness,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> None:
    await harness.send(DIRECTOR_TELEGRAM, "/menu")
    await harness.press(DIRECTOR_TELEGRAM, "🔔 Уведомления")
    await harness.press(DIRECTOR_TELEGRAM, "🔕 Выключить уведомления")
    assert await muted_at(session_factory) == clock.now()
    clock.advance(minutes=30)
    await applicant_cancels(harness)

    await max_harness.send(DIRECTOR_MAX, "/menu")
    screen = await max_harness.press(DIRECTOR_MAX, "🔔 Уведомления")
    assert "Уведомления выключены" in screen.text
    await max_harness.press(DIRECTOR_MAX, "🔔 Включить уведомления")
    summary = max_harness.api.last_bot_message(DIRECTOR_MAX)
    lines = summary.text.splitlines()
    assert lines[0] == SUMMARY
    assert "• изменений статуса: 1" in lines  # the applicant's cancel
    assert await muted_at(session_factory) is None
    harness.assert_no_errors()
    max_harness.assert_no_errors()


async def test_logging_out_where_pushes_were_muted_keeps_the_moment(
    harness: BotHarness,
    max_harness: MaxHarness,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> None:
    await max_harness.send(DIRECTOR_MAX, "/menu")
    await max_harness.press(DIRECTOR_MAX, "🔔 Уведомления")
    await max_harness.press(DIRECTOR_MAX, "🔕 Выключить уведомления")
    await max_harness.send(DIRECTOR_MAX, "/logout")
    await max_harness.press(DIRECTOR_MAX, "Да, отвязать")
    clock.advance(hours=2)

    await harness.send(DIRECTOR_TELEGRAM, "/menu")
    await harness.press(DIRECTOR_TELEGRAM, "🔔 Уведомления")
    await harness.press(DIRECTOR_TELEGRAM, "🔔 Включить уведомления")
    summary = harness.api.last_bot_message(DIRECTOR_TELEGRAM)
    assert summary.text.splitlines()[0] == SUMMARY
    harness.assert_no_errors()
    max_harness.assert_no_errors()
