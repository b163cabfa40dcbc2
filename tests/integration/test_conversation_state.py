"""A conversation's state survives restarts: the same suite against the SQL store (SQLite, and
PostgreSQL when TEST_DATABASE_URL is set) and the Redis store (when TEST_REDIS_URL is set); the
state commits with the update in SQL, and is written after the commit in Redis.

Redis keys carry a bot id of this test's own, so the suite neither sees nor touches anyone
else's keys, and deletes its own afterwards.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.conversation.locks import InProcessLocks, RedisLocks
from bot.conversation.stores import build_runner
from bot.settings import Settings
from services.clock import ManualClock
from storage.db import create_engine, create_session_factory
from storage.models import FsmState
from storage.repositories import Repositories
from storage.states import RawState, RedisStates, SqlStates, StateKey, StateStore
from tests import factories
from tests.conftest import BACKENDS, TEST_REDIS_URL, empty_database
from tests.director_data import DIRECTOR, NEWEST_NEW, seed_applications
from tests.fakes.bot_api import FakeBotAPI
from tests.harness import BotHarness, test_settings

STORE_BACKENDS = [*BACKENDS, "redis"]


@dataclass
class Backend:
    kind: str
    database_url: str
    redis_url: str | None
    bot_id: int


@pytest.fixture(params=STORE_BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Each state store in turn: SQLite, PostgreSQL (if configured), Redis (if configured)."""
    kind = request.param
    if kind == "redis" and not TEST_REDIS_URL:
        pytest.skip("the Redis state suite needs Redis: set TEST_REDIS_URL=redis://HOST:PORT/DB")
    # The Redis variant still gets a database: the bot always has one.
    database_url = empty_database(request, "sqlite" if kind == "redis" else kind, tmp_path)
    redis_url = TEST_REDIS_URL if kind == "redis" else None
    return Backend(kind, database_url, redis_url, bot_id=900_000_000 + secrets.randbelow(10**8))


@pytest.fixture
async def session_factory(backend: Backend) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(backend.database_url)
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def store(
    backend: Backend, session_factory: async_sessionmaker[AsyncSession]
) -> AsyncIterator[StateStore]:
    if backend.redis_url is None:
        yield SqlStates(session_factory)
        return
    redis = Redis.from_url(backend.redis_url)
    yield RedisStates(redis)
    keys = [key async for key in redis.scan_iter(f"fsm:{backend.bot_id}:*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


def key(backend: Backend, chat_id: int = 2000, user_id: int = 2000) -> StateKey:
    return StateKey(backend.bot_id, chat_id, user_id)


async def load(
    store: StateStore, session_factory: async_sessionmaker[AsyncSession], state_key: StateKey
) -> RawState:
    async with session_factory() as session:
        _, raw = await store.load(session, state_key)
        return raw


async def save(
    store: StateStore,
    session_factory: async_sessionmaker[AsyncSession],
    state_key: StateKey,
    raw: RawState,
) -> None:
    async with session_factory() as session:
        after = await store.save(session, state_key, raw)
        await session.commit()
    if after is not None:
        await after()


async def test_a_new_key_has_no_state(
    backend: Backend, store: StateStore, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    assert (await load(store, session_factory, key(backend))).empty


async def test_a_state_is_kept_replaced_and_forgotten(
    backend: Backend, store: StateStore, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    state_key = key(backend)
    await save(store, session_factory, state_key, RawState("AppInput:search", {"prompt": "7"}))
    assert await load(store, session_factory, state_key) == RawState(
        "AppInput:search", {"prompt": "7"}
    )
    await save(store, session_factory, state_key, RawState(None, {"search": "Войсковая"}))
    assert await load(store, session_factory, state_key) == RawState(None, {"search": "Войсковая"})
    await save(store, session_factory, state_key, RawState())
    assert (await load(store, session_factory, state_key)).empty
    if backend.redis_url is None:  # an empty state leaves no row behind
        async with session_factory() as session:
            assert await session.scalar(select(func.count()).select_from(FsmState)) == 0


async def test_every_part_of_the_key_separates_conversations(
    backend: Backend, store: StateStore, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    keys = [key(backend), key(backend, chat_id=2001), key(backend, user_id=2001)]
    keys.append(StateKey(backend.bot_id + 1, 2000, 2000))
    keys.append(StateKey(backend.bot_id, 2000, 2000, "max"))  # the same ids in another messenger
    for index, state_key in enumerate(keys):
        await save(store, session_factory, state_key, RawState(None, {"search": str(index)}))
    for index, state_key in enumerate(keys):
        assert (await load(store, session_factory, state_key)).data == {"search": str(index)}
    if backend.redis_url is not None:
        redis = Redis.from_url(backend.redis_url)
        await redis.delete(f"fsm:{backend.bot_id + 1}:2000:2000:data")
        await redis.delete(f"fsm:max:{backend.bot_id}:2000:2000:data")
        await redis.aclose()


async def test_clearing_outside_an_update_forgets_the_conversation(
    backend: Backend, store: StateStore, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    state_key = key(backend)
    await save(store, session_factory, state_key, RawState("AppInput:search", {"search": "х"}))
    await store.clear(state_key)
    assert (await load(store, session_factory, state_key)).empty


async def test_concurrent_first_writes_to_one_key_do_not_collide(
    backend: Backend, store: StateStore, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    state_key = key(backend)
    await asyncio.gather(
        *(
            save(store, session_factory, state_key, RawState(None, {"search": str(n)}))
            for n in range(10)
        )
    )
    data = (await load(store, session_factory, state_key)).data
    assert data is not None
    assert data["search"] in {str(n) for n in range(10)}


async def test_the_sender_is_read_as_the_orm_reads_them(
    backend: Backend, store: StateStore, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """The binding and account every update reads as plain rows say what the ORM's objects
    say, whatever the number of the account's roles; the state is read once beside them; an
    unbound user has none."""
    muted_at = factories.T0.replace(hour=9)
    async with session_factory() as session:
        session.add(factories.organization(1))
        await session.flush()  # no relationship orders an account after its organisation
        several = factories.account(
            1, "Иванова Мария", 1, "staff", "director", "listener", consent=True
        )
        several.active_role, several.muted, several.muted_at = "staff", True, muted_at
        several.push_to, several.digest_enabled = "both", False
        none = factories.account(2, "Петров Иван", None)
        session.add_all([several, none])
        session.add(factories.binding(1, 2000, chat_id=3000, blocked=True))
        session.add(factories.binding(2, 2001))
        await session.commit()
    state_key = key(backend)
    await save(store, session_factory, state_key, RawState("AppInput:search", {"prompt": "7"}))
    for user_id, roles in ((2000, ("director", "listener", "staff")), (2001, ())):
        async with session_factory() as session:
            row, raw = await store.load(session, key(backend, user_id=user_id))
            orm = await Repositories(session).links.by_user("telegram", user_id)
        assert row is not None
        assert orm is not None
        assert (row.id, row.account_id, row.messenger, row.user_id, row.chat_id) == (
            orm.id,
            orm.account_id,
            orm.messenger,
            orm.user_id,
            orm.chat_id,
        )
        assert (row.blocked, row.linked_at) == (orm.blocked, orm.linked_at)
        assert row.account.role_codes == roles == tuple(orm.account.role_codes)
        for name in FACTS:
            assert getattr(row.account, name) == getattr(orm.account, name), name
        expected = RawState("AppInput:search", {"prompt": "7"}) if user_id == 2000 else RawState()
        assert raw == expected
    assert (row.account.muted, row.account.muted_at) == (False, None)  # the second account's
    async with session_factory() as session:
        stranger, raw = await store.load(session, key(backend, user_id=2002))
    assert stranger is None
    assert raw.empty


FACTS = (
    "id",
    "full_name",
    "organization_id",
    "active_role",
    "consent_at",
    "consent_version",
    "muted",
    "muted_at",
    "digest_enabled",
    "push_to",
)


# -- through the bot -------------------------------------------------------------------------


async def test_a_comment_started_before_a_restart_finishes_after_it(
    backend: Backend, session_factory: async_sessionmaker[AsyncSession], store: StateStore
) -> None:
    async with session_factory() as session:
        await factories.seed_school(session)
        await session.commit()
    await seed_applications(session_factory)
    async with FakeBotAPI(token=f"{backend.bot_id}:TEST") as api:
        api.add_user(DIRECTOR)
        settings = test_settings(api, backend.database_url, REDIS_URL=backend.redis_url)
        first = BotHarness(api, settings, session_factory, ManualClock())
        try:
            card = await first.send(DIRECTOR, f"/start app_{NEWEST_NEW}")
            prompt = await first.press(DIRECTOR, "✅ Одобрить", card.message_id)
            assert "Напишите комментарий" in prompt.text
        finally:
            await first.close()
        # A fresh process: new Dispatcher and runner, the same database or Redis.
        second = BotHarness(api, settings, session_factory, ManualClock())
        try:
            done = await second.send(DIRECTOR, "Согласовано с методистом")
            assert f"Заявка №{NEWEST_NEW} одобрена" in done.text
            second.assert_no_errors()
        finally:
            await second.close()
    assert (await load(store, session_factory, StateKey(backend.bot_id, DIRECTOR, DIRECTOR))).empty


def test_redis_url_puts_the_state_and_the_locks_in_redis(tmp_path: Path) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}",
        REDIS_URL="redis://127.0.0.1:6379/11",
    )
    runner = build_runner(settings, create_session_factory(create_engine(settings.DATABASE_URL)))
    assert isinstance(runner.states, RedisStates)
    assert isinstance(runner.locks, RedisLocks)


def test_without_redis_the_state_lives_in_the_database(tmp_path: Path) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    )
    runner = build_runner(settings, create_session_factory(create_engine(settings.DATABASE_URL)))
    assert isinstance(runner.states, SqlStates)
    assert isinstance(runner.locks, InProcessLocks)
