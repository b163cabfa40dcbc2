"""Where a person bound in both messengers gets pushes when one of the chats blocked the bot:
by default (and when the chosen messenger is no longer bound) the one that can be reached; a
messenger the person chose stays chosen. Through the real MAX front end (the user stops the
bot) and the real Telegram Dispatcher (the applicant's cancel writes the push; «🔔
Уведомления» says where pushes go)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import Account
from tests import factories
from tests.director_data import LISTENER, NEWEST_NEW, outbox_of, seed_applications
from tests.fakes.max_api import FakeMaxAPI
from tests.harness import BotHarness
from tests.max_harness import MaxHarness

DIRECTOR, DIRECTOR_TELEGRAM = 1, 1001
DIRECTOR_MAX = factories.user_id_of(DIRECTOR_TELEGRAM, "max")  # bound in both


@pytest.fixture(autouse=True)
async def school(
    seeded: None, max_api: FakeMaxAPI, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """The seeded school, its applications, and the director bound in MAX too, a day after
    Telegram: the default is MAX, bound last."""
    await seed_applications(session_factory)
    async with session_factory() as session:
        chat_id = max_api.chat_id_of(DIRECTOR_MAX)
        binding = factories.binding(DIRECTOR, DIRECTOR_MAX, messenger="max", chat_id=chat_id)
        binding.linked_at = factories.T0 + timedelta(days=1)
        session.add(binding)
        await session.commit()


async def where_pushes_go(harness: BotHarness) -> str:
    screen = await harness.press(DIRECTOR_TELEGRAM, "🔔 Уведомления")
    line = next(line for line in screen.text.splitlines() if line.startswith("Уведомления при"))
    await harness.send(DIRECTOR_TELEGRAM, "/menu")
    return line


async def test_a_push_goes_to_telegram_while_max_blocked_the_bot(
    harness: BotHarness,
    max_harness: MaxHarness,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    await harness.send(DIRECTOR_TELEGRAM, "/menu")
    assert await where_pushes_go(harness) == "Уведомления приходят в MAX."
    max_harness.api.stop_bot(DIRECTOR_MAX)
    await max_harness.feed_pending()
    assert await where_pushes_go(harness) == "Уведомления приходят в Telegram."

    # The applicant cancels her application in Telegram: the directors hear of it.
    await harness.send(LISTENER, f"/start app_{NEWEST_NEW}")
    await harness.press(LISTENER, "❌ Отменить")
    await harness.press(LISTENER, "Да, отменить")
    await harness.press(LISTENER, "Без комментария")
    pushes = [row for row in await outbox_of(session_factory, NEWEST_NEW) if row.account_id == 1]
    assert [(row.channel, row.chat_id, row.state) for row in pushes] == [
        ("telegram", DIRECTOR_TELEGRAM, "pending")
    ]
    # Back in MAX: MAX, bound last, is the default again.
    await max_harness.start(DIRECTOR_MAX)
    assert await where_pushes_go(harness) == "Уведомления приходят в MAX."
    harness.assert_no_errors()
    max_harness.assert_no_errors()


async def test_a_chosen_messenger_stays_chosen_while_it_blocked_the_bot(
    harness: BotHarness,
    max_harness: MaxHarness,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    async with session_factory() as session:
        account = await session.get(Account, DIRECTOR)
        assert account is not None
        account.push_to = "max"
        await session.commit()
    max_harness.api.stop_bot(DIRECTOR_MAX)
    await max_harness.feed_pending()
    await harness.send(DIRECTOR_TELEGRAM, "/menu")
    assert await where_pushes_go(harness) == "Уведомления приходят в MAX."
    harness.assert_no_errors()
    max_harness.assert_no_errors()
