"""Telegram's flood control (429) met by the bot's replies is waited out
(bot/telegram/flood.py); the dispatcher's sends get the 429 at once and pace themselves."""

from __future__ import annotations

import logging

import pytest
from aiogram.exceptions import TelegramRetryAfter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.telegram.flood import flood_errors_raised
from tests.director_data import DIRECTOR, NEWEST_NEW, events_of, seed_applications, status_of
from tests.harness import BotHarness


@pytest.fixture
async def school(seeded: None, session_factory: async_sessionmaker[AsyncSession]) -> None:
    await seed_applications(session_factory)


def statuses(harness: BotHarness, method: str) -> list[int]:
    return [call.status for call in harness.api.calls_of(method)]


@pytest.mark.usefixtures("seeded")
async def test_a_reply_that_meets_flood_control_is_sent_after_the_wait(
    harness: BotHarness,
) -> None:
    harness.api.fail_next("sendMessage", error_code=429, retry_after=1)
    menu = await harness.send(DIRECTOR, "/menu")
    assert menu.text.startswith("Главное меню")
    assert statuses(harness, "sendMessage") == [429, 200]
    harness.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_a_decision_whose_answer_meets_flood_control_is_kept(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """The answer to the comment comes after the decision is written: a 429 there used to fail
    the update and roll the decision back."""
    await harness.send(DIRECTOR, f"/start app_{NEWEST_NEW}")
    await harness.press(DIRECTOR, "✅ Одобрить")
    harness.api.fail_next("sendMessage", error_code=429, retry_after=1)
    card = await harness.send(DIRECTOR, "Одобряю")
    assert card.text.startswith(f"✅ Заявка №{NEWEST_NEW} одобрена.")
    assert statuses(harness, "sendMessage")[-2:] == [429, 200]
    assert await status_of(session_factory, NEWEST_NEW) == "approved"
    assert [event.action for event in await events_of(session_factory, NEWEST_NEW)] == ["approve"]
    harness.assert_no_errors()


@pytest.mark.usefixtures("seeded")
async def test_a_long_flood_wait_is_not_waited_out(
    harness: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """The update is handled (its effects are carried out after the commit); the reply that
    Telegram holds back for a minute is given up and logged, not waited for."""
    harness.api.fail_next("sendMessage", error_code=429, retry_after=60)
    with caplog.at_level(logging.WARNING, logger="bot.telegram.effects"):
        harness.api.send_text(DIRECTOR, "/menu")
        await harness.feed_pending()
    assert statuses(harness, "sendMessage") == [429]
    assert "Show not carried out: TelegramRetryAfter" in caplog.text
    harness.assert_no_errors()


@pytest.mark.usefixtures("seeded")
async def test_requests_inside_flood_errors_raised_get_the_429_at_once(
    harness: BotHarness,
) -> None:
    harness.api.fail_next("sendMessage", error_code=429, retry_after=1)
    with flood_errors_raised(), pytest.raises(TelegramRetryAfter):
        await harness.bot.send_message(DIRECTOR, "уведомление")
    assert statuses(harness, "sendMessage") == [429]
    await harness.bot.send_message(DIRECTOR, "ответ")  # outside: as usual
    assert statuses(harness, "sendMessage") == [429, 200]
