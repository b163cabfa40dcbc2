"""Exactly once in: the real `python -m bot` killed (SIGKILL) or stopped (SIGTERM) while
decisions are in flight, then restarted; Telegram's double delivers again whatever it was not
told we received. Every decision is applied exactly once: one history row, one push.

Each of 24 directors approves an application from the push of it; the answers to half of the
presses are held back by the double, so at the kill some decisions are done and acknowledged
and others are still being handled.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import Application, ApplicationEvent, OutboxMessage
from tests.factories import applicant_chat, director_chat, school_application, seed_schools
from tests.fakes.bot_api import FakeBotAPI
from tests.processes import BotProcess, free_port, running

pytestmark = pytest.mark.slow

SCHOOLS = 24
HELD = 12  # decisions whose answer the double holds back
HOLD_SECONDS = 4.0
SECRET = "exactly-once-webhook-secret-0123456789"


async def seed(session_factory: async_sessionmaker[AsyncSession]) -> None:
    async with session_factory() as session:
        await seed_schools(session, SCHOOLS)
        await session.commit()


def add_users(api: FakeBotAPI) -> None:
    for org in range(1, SCHOOLS + 1):
        api.add_user(director_chat(org), first_name=f"Директор{org}")
        api.add_user(applicant_chat(org), first_name=f"Педагог{org}")


async def counts(session_factory: async_sessionmaker[AsyncSession]) -> dict[str, object]:
    async with session_factory() as session:
        approvals = await session.execute(
            select(ApplicationEvent.application_number, func.count())
            .where(ApplicationEvent.action == "approve")
            .group_by(ApplicationEvent.application_number)
        )
        pushes = await session.execute(
            select(OutboxMessage.application_number, func.count())
            .where(OutboxMessage.kind == "status_changed")
            .group_by(OutboxMessage.application_number)
        )
        statuses = await session.execute(
            select(Application.status, func.count()).group_by(Application.status)
        )
        return {
            "approvals": dict(approvals.tuples().all()),
            "pushes": dict(pushes.tuples().all()),
            "statuses": dict(statuses.tuples().all()),
        }


async def approvals(session_factory: async_sessionmaker[AsyncSession]) -> int:
    async with session_factory() as session:
        found = await session.scalar(
            select(func.count())
            .select_from(ApplicationEvent)
            .where(ApplicationEvent.action == "approve")
        )
        return int(found or 0)


def assert_each_applied_once(found: dict[str, object]) -> None:
    every = {school_application(org): 1 for org in range(1, SCHOOLS + 1)}
    assert found["approvals"] == every  # one history row per decision
    assert found["pushes"] == every  # one push to the applicant per decision
    assert found["statuses"] == {"approved": SCHOOLS}


async def open_prompts(api: FakeBotAPI, bot: BotProcess) -> None:
    """Every director got the push of the new application and pressed «✅ Одобрить» on it:
    the prompt for a comment is on screen, «Без комментария» under it."""

    def pushed(org: int) -> bool:
        return any(m.from_bot and "Новая заявка" in m.text for m in api.chat(director_chat(org)))

    await bot.wait_for(lambda: all(pushed(org) for org in range(1, SCHOOLS + 1)))
    for org in range(1, SCHOOLS + 1):
        api.press(director_chat(org), "✅ Одобрить")


def prompted(api: FakeBotAPI) -> bool:
    return all(
        "Без комментария" in str(api.last_bot_message(director_chat(org)).buttons())
        for org in range(1, SCHOOLS + 1)
    )


def decide_all(api: FakeBotAPI) -> None:
    """Every director presses «Без комментария»; the first HELD answers are held back."""
    api.timeout_next("answerCallbackQuery", seconds=HOLD_SECONDS, times=HELD)
    for org in range(1, SCHOOLS + 1):
        api.press(director_chat(org), "Без комментария")


def unheld_answered(api: FakeBotAPI) -> bool:
    """Every press is answered but the HELD decisions', which are still being handled."""
    return sum(c.ok for c in api.calls_of("answerCallbackQuery")) >= 2 * SCHOOLS - HELD


async def decide_all_while_polling(api: FakeBotAPI, bot: BotProcess) -> None:
    """Every director approves from the push without a comment; back when the decisions not
    held are answered."""
    await open_prompts(api, bot)
    await bot.wait_for(lambda: prompted(api))
    decide_all(api)
    await bot.wait_for(lambda: unheld_answered(api))


def env(api: FakeBotAPI, database_url: str, **values: str) -> dict[str, str]:
    return {
        "BOT_TOKEN": api.token,
        "DATABASE_URL": database_url,
        "TELEGRAM_API_URL": api.url,
        "WEB_PORT": "0",
        "LOG_LEVEL": "INFO",
        **values,
    }


async def test_webhook_mode_killed_mid_decisions_applies_each_once(
    database_url: str, session_factory: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    await seed(session_factory)
    port = free_port()
    webhook = {
        "WEB_PORT": str(port),
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "WEBHOOK_SECRET": SECRET,
    }
    async with FakeBotAPI() as api:
        add_users(api)
        async with running(tmp_path / "first", **env(api, database_url, **webhook)) as bot:
            await bot.wait_for(lambda: api.webhook is not None)
            await open_prompts(api, bot)
            assert await api.deliver_webhook(concurrency=SCHOOLS) == [200] * SCHOOLS
            await bot.wait_for(lambda: prompted(api))
            decide_all(api)
            delivery = asyncio.create_task(api.deliver_webhook(concurrency=SCHOOLS))
            # Some decisions are done and answered, the held ones are still in progress.
            await bot.wait_for(lambda: unheld_answered(api))
            await bot.kill()
            statuses = await delivery
        answered = statuses.count(200)
        assert answered < SCHOOLS, "the kill came after every decision was answered"
        assert len(api.unconfirmed_updates()) == SCHOOLS - answered  # Telegram delivers again

        api.webhook = None  # the restarted process sets it again
        async with running(tmp_path / "second", **env(api, database_url, **webhook)) as again:
            await again.wait_for(lambda: api.webhook is not None)
            assert await api.deliver_webhook(concurrency=SCHOOLS) == [200] * (SCHOOLS - answered)
            assert api.unconfirmed_updates() == []
            assert await again.terminate() == 0
    assert_each_applied_once(await counts(session_factory))
    assert "Traceback" not in again.stderr()


async def test_polling_killed_mid_decisions_applies_each_once(
    database_url: str, session_factory: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    await seed(session_factory)
    async with FakeBotAPI() as api:
        add_users(api)
        async with running(tmp_path / "first", **env(api, database_url)) as bot:
            await decide_all_while_polling(api, bot)
            await bot.kill()
        assert api.unconfirmed_updates(), "nothing was in flight"

        polls = len(api.calls_of("deleteWebhook"))
        async with running(tmp_path / "second", **env(api, database_url)) as again:
            await again.wait_for(lambda: len(api.calls_of("deleteWebhook")) > polls)  # polling
            # What Telegram held is delivered and confirmed: handled now, or skipped as handled.
            await again.wait_for(lambda: api.unconfirmed_updates() == [])
            assert await again.terminate() == 0
    assert_each_applied_once(await counts(session_factory))
    assert "Traceback" not in again.stderr()


def _settled(api: FakeBotAPI) -> bool:
    """Every director's chat shows the outcome of the decision."""
    return all(
        "Без комментария" not in str(api.last_bot_message(director_chat(org)).buttons())
        for org in range(1, SCHOOLS + 1)
    )


async def test_sigterm_finishes_the_decisions_in_progress(
    database_url: str, session_factory: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    """A stop waits for the slow updates in hand: they end done and acknowledged, nothing is
    left for a restart."""
    await seed(session_factory)
    async with FakeBotAPI() as api:
        add_users(api)
        async with running(tmp_path / "bot", **env(api, database_url)) as bot:
            await decide_all_while_polling(api, bot)
            assert await approvals(session_factory) < SCHOOLS or not _settled(api)
            assert await bot.terminate() == 0
        assert api.unconfirmed_updates() == []  # every update confirmed before the exit
    assert_each_applied_once(await counts(session_factory))
    assert "Traceback" not in bot.stderr()
