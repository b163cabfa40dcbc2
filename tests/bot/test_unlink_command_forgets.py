"""`python -m bot unlink` forgets the removed chats' conversation state in Redis (a search for
a surname stays there up to 30 days otherwise), as the web module's revocation does: the
director searches in Telegram and in MAX, the operator unlinks one messenger, then all. Needs
Redis (TEST_REDIS_URL); skipped without it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.cli.main import _unlink
from bot.settings import Settings
from services.clock import ManualClock
from storage.states import RawState, StateKey
from tests import factories
from tests.conftest import TEST_REDIS_URL
from tests.fakes.bot_api import FakeBotAPI
from tests.fakes.max_api import FakeMaxAPI
from tests.harness import SNILS_KEY, BotHarness, test_settings
from tests.max_harness import MaxHarness, max_settings

pytestmark = pytest.mark.usefixtures("seeded")

DIRECTOR, DIRECTOR_TELEGRAM = 1, 1001
DIRECTOR_MAX = factories.user_id_of(DIRECTOR_TELEGRAM, "max")
SURNAME = "Войсковая"  # a person's name in the chat's state


@pytest.fixture
def redis_url() -> str:
    if not TEST_REDIS_URL:
        pytest.skip("needs Redis: set TEST_REDIS_URL=redis://HOST:PORT/DB")
    return TEST_REDIS_URL


@pytest.fixture
async def both(
    api: FakeBotAPI,
    max_api: FakeMaxAPI,
    database_url: str,
    redis_url: str,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> AsyncIterator[tuple[BotHarness, MaxHarness]]:
    """The director bound in MAX too; both front ends keeping conversations in Redis."""
    async with session_factory() as session:
        chat_id = max_api.chat_id_of(DIRECTOR_MAX)
        session.add(factories.binding(DIRECTOR, DIRECTOR_MAX, messenger="max", chat_id=chat_id))
        await session.commit()
    telegram = BotHarness(
        api, test_settings(api, database_url, REDIS_URL=redis_url), session_factory, clock
    )
    max_ = MaxHarness(
        max_api, max_settings(max_api, database_url, REDIS_URL=redis_url), session_factory, clock
    )
    for key in keys(telegram, max_):
        await telegram.dp["runner"].states.clear(key)  # nothing left from an earlier run
    yield telegram, max_
    await telegram.close()
    await max_.close()


def keys(telegram: BotHarness, max_: MaxHarness) -> tuple[StateKey, StateKey]:
    chat_id = max_.api.chat_id_of(DIRECTOR_MAX)
    return (
        StateKey(telegram.bot.id, DIRECTOR_TELEGRAM, DIRECTOR_TELEGRAM),
        StateKey(max_.api.bot_id, chat_id, DIRECTOR_MAX, "max"),
    )


async def states(harness: BotHarness, max_: MaxHarness) -> list[RawState]:
    found = []
    for key in keys(harness, max_):
        async with harness.session_factory() as session:
            _, raw = await harness.dp["runner"].states.load(session, key)
        found.append(raw)
    return found


def operator(api: FakeBotAPI, max_api: FakeMaxAPI, database_url: str, redis_url: str) -> Settings:
    """The settings `python -m bot unlink` runs with: the deployment's (both bots, Redis)."""
    return test_settings(
        api,
        database_url,
        MAX_BOT_TOKEN=max_api.token,
        MAX_API_URL=max_api.url,
        REDIS_URL=redis_url,
        SNILS_HASH_KEY=SNILS_KEY,
    )


async def test_the_unlink_command_forgets_the_chats_state_in_redis(
    both: tuple[BotHarness, MaxHarness],
    api: FakeBotAPI,
    max_api: FakeMaxAPI,
    database_url: str,
    redis_url: str,
) -> None:
    telegram, max_ = both
    await telegram.send(DIRECTOR_TELEGRAM, SURNAME)  # a search: the state holds the name
    await max_.send(DIRECTOR_MAX, SURNAME)
    assert [raw.data and raw.data.get("search") for raw in await states(telegram, max_)] == [
        SURNAME,
        SURNAME,
    ]
    settings = operator(api, max_api, database_url, redis_url)

    assert await _unlink(settings, DIRECTOR, "max") == 0
    in_telegram, in_max = await states(telegram, max_)
    assert in_max.empty
    assert in_telegram.data is not None
    assert in_telegram.data["search"] == SURNAME  # the other messenger's chat is not touched

    assert await _unlink(settings, DIRECTOR, None) == 0
    assert all(raw.empty for raw in await states(telegram, max_))
    telegram.assert_no_errors()
    max_.assert_no_errors()
