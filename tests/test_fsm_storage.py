"""FSM state survives restarts: the same behaviour suite against the SQL storage (SQLite, and
PostgreSQL when TEST_DATABASE_URL is set) and aiogram's RedisStorage (when TEST_REDIS_URL is set).

Redis keys carry a bot id of this test's own (DefaultKeyBuilder(with_bot_id=True)), so the suite
neither sees nor touches anyone else's keys, and deletes its own afterwards.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiogram import F
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.base import BaseStorage, StorageKey
from aiogram.fsm.storage.redis import RedisEventIsolation, RedisStorage
from aiogram.types import Message
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.app import build_dispatcher, build_events_isolation, build_fsm_storage
from bot.middlewares import UserEventIsolation
from bot.settings import Settings
from services.clock import ManualClock
from storage.db import create_engine, create_session_factory
from storage.fsm import SqlStorage
from storage.models import FsmState, Organization
from storage.repositories import Repositories
from tests.conftest import BACKENDS, TEST_REDIS_URL, empty_database
from tests.fakes.bot_api import FakeBotAPI
from tests.harness import BotHarness, test_settings

STORAGE_BACKENDS = [*BACKENDS, "redis"]
USER = 2000


@dataclass
class Backend:
    """One FSM storage backend under test: how to open a fresh storage over the same data."""

    kind: str
    database_url: str
    redis_url: str | None
    bot_id: int

    def settings(self, **values: Any) -> Settings:
        return Settings(  # type: ignore[call-arg]
            _env_file=None, DATABASE_URL=self.database_url, REDIS_URL=self.redis_url, **values
        )


def make_backend(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> Backend:
    if kind == "redis" and not TEST_REDIS_URL:
        pytest.skip("the RedisStorage suite needs Redis: set TEST_REDIS_URL=redis://HOST:PORT/DB")
    # The Redis variant still gets a database: the bot always has one.
    database_url = empty_database(request, "sqlite" if kind == "redis" else kind, tmp_path)
    redis_url = TEST_REDIS_URL if kind == "redis" else None
    return Backend(kind, database_url, redis_url, bot_id=900_000_000 + secrets.randbelow(10**8))


@pytest.fixture(params=STORAGE_BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Each FSM storage backend in turn: SQLite, PostgreSQL (if configured), Redis."""
    return make_backend(request, request.param, tmp_path)


@pytest.fixture(params=BACKENDS)
def sql_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The SQL storage backends only (for what is about the database transaction)."""
    return make_backend(request, request.param, tmp_path)


@pytest.fixture
async def session_factory(backend: Backend) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(backend.database_url)
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def open_storage(
    backend: Backend, session_factory: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Callable[[], BaseStorage]]:
    """Opens a new storage instance over the same data each call (a restarted process)."""
    opened: list[BaseStorage] = []

    def open_storage() -> BaseStorage:
        storage = build_fsm_storage(backend.settings(), session_factory)
        opened.append(storage)
        return storage

    yield open_storage
    if backend.redis_url:
        keys = await redis_keys(backend)
        redis = Redis.from_url(backend.redis_url)
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
    for storage in opened:
        await storage.close()


async def redis_keys(backend: Backend) -> list[bytes]:
    assert backend.redis_url is not None
    redis = Redis.from_url(backend.redis_url)
    try:
        return [key async for key in redis.scan_iter(f"fsm:{backend.bot_id}:*")]
    finally:
        await redis.aclose()


async def leftovers(backend: Backend, session_factory: async_sessionmaker[AsyncSession]) -> int:
    """What the storage keeps: Redis keys or database rows."""
    if backend.redis_url:
        return len(await redis_keys(backend))
    async with session_factory() as session:
        return int(await session.scalar(select(func.count()).select_from(FsmState)) or 0)


def key(backend: Backend, **parts: Any) -> StorageKey:
    values: dict[str, Any] = {"bot_id": backend.bot_id, "chat_id": USER, "user_id": USER}
    values.update(parts)
    return StorageKey(**values)


class Comment(StatesGroup):
    text = State()
    confirm = State()


# -- the storage itself ------------------------------------------------------------------------


async def test_the_backend_in_use_is_the_expected_one(
    backend: Backend, open_storage: Callable[[], BaseStorage]
) -> None:
    storage = open_storage()
    expected = RedisStorage if backend.kind == "redis" else SqlStorage
    assert isinstance(storage, expected)


async def test_a_new_key_has_no_state_and_no_data(
    backend: Backend, open_storage: Callable[[], BaseStorage]
) -> None:
    storage = open_storage()
    assert await storage.get_state(key(backend)) is None
    assert await storage.get_data(key(backend)) == {}
    assert await storage.get_value(key(backend), "number", 0) == 0


async def test_state_by_name_or_state_object(
    backend: Backend, open_storage: Callable[[], BaseStorage]
) -> None:
    storage = open_storage()
    await storage.set_state(key(backend), Comment.text)
    assert await storage.get_state(key(backend)) == "Comment:text"
    await storage.set_state(key(backend), "Comment:confirm")
    assert await storage.get_state(key(backend)) == "Comment:confirm"


async def test_data_is_replaced_updated_and_returned_as_a_copy(
    backend: Backend, open_storage: Callable[[], BaseStorage]
) -> None:
    storage = open_storage()
    data = {"number": 39744, "comment": "Ждём вас «в понедельник»", "pages": [1, 2], "x": None}
    await storage.set_data(key(backend), data)
    assert await storage.get_data(key(backend)) == data
    assert await storage.update_data(key(backend), {"page": 3}) == {**data, "page": 3}
    assert await storage.get_value(key(backend), "page") == 3
    returned = await storage.get_data(key(backend))
    returned["number"] = 1
    assert await storage.get_value(key(backend), "number") == 39744
    await storage.set_data(key(backend), {"only": True})
    assert await storage.get_data(key(backend)) == {"only": True}


async def test_state_and_data_are_cleared_independently(
    backend: Backend,
    open_storage: Callable[[], BaseStorage],
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    storage = open_storage()
    await storage.set_state(key(backend), Comment.text)
    await storage.set_data(key(backend), {"number": 39744})
    await storage.set_state(key(backend), None)
    assert await storage.get_data(key(backend)) == {"number": 39744}
    await storage.set_state(key(backend), Comment.confirm)
    await storage.set_data(key(backend), {})
    assert await storage.get_state(key(backend)) == "Comment:confirm"
    await storage.set_state(key(backend), None)
    assert await storage.get_state(key(backend)) is None
    assert await storage.get_data(key(backend)) == {}
    assert await leftovers(backend, session_factory) == 0  # a finished conversation leaves nothing


async def test_every_part_of_the_key_separates_conversations(
    backend: Backend, open_storage: Callable[[], BaseStorage]
) -> None:
    storage = open_storage()
    others: list[dict[str, Any]] = [
        {"user_id": USER + 1},
        {"chat_id": USER + 1},
        {"bot_id": backend.bot_id + 1},
        {"thread_id": 7},
    ]
    if backend.kind != "redis":  # the bot's Redis key builder keys by bot, chat, thread, user
        others += [{"business_connection_id": "bc-1"}, {"destiny": "search"}]
    await storage.set_state(key(backend), Comment.text)
    await storage.set_data(key(backend), {"number": 1})
    for number, other in enumerate(others, start=2):
        await storage.set_state(key(backend, **other), Comment.confirm)
        await storage.set_data(key(backend, **other), {"number": number})
    assert await storage.get_state(key(backend)) == "Comment:text"
    assert await storage.get_data(key(backend)) == {"number": 1}
    for number, other in enumerate(others, start=2):
        assert await storage.get_state(key(backend, **other)) == "Comment:confirm", other
        assert await storage.get_data(key(backend, **other)) == {"number": number}, other
    for other in others:
        await storage.set_state(key(backend, **other), None)
        await storage.set_data(key(backend, **other), {})


async def test_a_new_storage_instance_sees_what_the_closed_one_wrote(
    backend: Backend, open_storage: Callable[[], BaseStorage]
) -> None:
    before = open_storage()
    await before.set_state(key(backend), Comment.text)
    await before.set_data(key(backend), {"number": 39744})
    await before.close()
    after = open_storage()
    assert await after.get_state(key(backend)) == "Comment:text"
    assert await after.get_data(key(backend)) == {"number": 39744}


async def test_concurrent_first_writes_to_one_key_do_not_collide(
    backend: Backend, open_storage: Callable[[], BaseStorage]
) -> None:
    storages = [open_storage() for _ in range(4)]
    await asyncio.gather(
        *(s.set_state(key(backend), Comment.text) for s in storages[:2]),
        *(s.set_data(key(backend), {"number": 39744}) for s in storages[2:]),
    )
    assert await storages[0].get_state(key(backend)) == "Comment:text"
    assert await storages[0].get_data(key(backend)) == {"number": 39744}


async def test_a_burst_of_concurrent_reads_waits_for_connections_instead_of_failing(
    backend: Backend, open_storage: Callable[[], BaseStorage]
) -> None:
    storage = open_storage()
    await storage.set_state(key(backend), Comment.text)
    states = await asyncio.gather(*(storage.get_state(key(backend)) for _ in range(300)))
    assert set(states) == {"Comment:text"}


# -- through the Dispatcher ----------------------------------------------------------------------


async def ask_for_comment(message: Message, state: FSMContext) -> None:
    await state.set_state(Comment.text)
    await state.update_data(number=39744)
    await message.answer("Напишите комментарий к заявке №39744.")


async def take_comment(message: Message, state: FSMContext) -> None:
    data = await state.get_data()
    await state.clear()
    await message.answer(f"Комментарий к заявке №{data['number']} получен: {message.text}")


def with_comment_flow(harness: BotHarness) -> BotHarness:
    # Registered on the Dispatcher itself: its own handlers come before the app's routers.
    harness.dp.message.register(ask_for_comment, Command("comment"))
    harness.dp.message.register(take_comment, Comment.text, F.text)
    return harness


@pytest.fixture
async def api(backend: Backend) -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI(token=f"{backend.bot_id}:TEST") as api:
        api.add_user(USER, first_name="Незнакомец")
        yield api


async def test_a_comment_started_before_a_restart_finishes_after_it(
    backend: Backend,
    api: FakeBotAPI,
    session_factory: async_sessionmaker[AsyncSession],
    open_storage: Callable[[], BaseStorage],
) -> None:
    settings = test_settings(api, backend.database_url, REDIS_URL=backend.redis_url)
    first = with_comment_flow(BotHarness(api, settings, session_factory, ManualClock()))
    reply = await first.send(USER, "/comment")
    assert reply.text == "Напишите комментарий к заявке №39744."
    await first.close()

    # A fresh process: new Dispatcher, new storage instance, same database or Redis.
    second = with_comment_flow(BotHarness(api, settings, session_factory, ManualClock()))
    try:
        reply = await second.send(USER, "Согласовано с методистом")
        assert reply.text == "Комментарий к заявке №39744 получен: Согласовано с методистом"
        second.assert_no_errors()
        storage = open_storage()
        assert await storage.get_state(key(backend)) is None
    finally:
        await second.close()


async def test_a_state_change_commits_with_the_updates_own_writes(
    backend: Backend,
    api: FakeBotAPI,
    session_factory: async_sessionmaker[AsyncSession],
    open_storage: Callable[[], BaseStorage],
) -> None:
    """A handler that writes domain data and then changes the state completes: on SQLite a
    second writing connection would wait for the update's transaction until it timed out."""

    async def write_then_ask(message: Message, state: FSMContext, repo: Repositories) -> None:
        repo.session.add(Organization(id=77, name="МАОУ СОШ №1", updated_at=clock.now()))
        await repo.session.flush()
        await state.set_state(Comment.text)
        await message.answer("Записано.")

    clock = ManualClock()
    settings = test_settings(api, backend.database_url, REDIS_URL=backend.redis_url)
    harness = BotHarness(api, settings, session_factory, clock)
    harness.dp.message.register(write_then_ask, Command("write"))
    try:
        assert (await harness.send(USER, "/write")).text == "Записано."
        harness.assert_no_errors()
    finally:
        await harness.close()
    async with session_factory() as session:
        assert await session.get(Organization, 77) is not None
    assert await open_storage().get_state(key(backend)) == "Comment:text"


async def test_a_failed_update_leaves_the_sql_state_unchanged(sql_backend: Backend) -> None:
    """The SQL state change is part of the update's transaction (Redis writes are not)."""

    async def ask_then_fail(message: Message, state: FSMContext) -> None:
        await state.set_state(Comment.text)
        raise RuntimeError("the handler failed after setting the state")

    engine = create_engine(sql_backend.database_url)
    factory = create_session_factory(engine)
    try:
        async with FakeBotAPI(token=f"{sql_backend.bot_id}:TEST") as api:
            api.add_user(USER, first_name="Незнакомец")
            harness = BotHarness(
                api, test_settings(api, sql_backend.database_url), factory, ManualClock()
            )
            harness.dp.message.register(ask_then_fail, Command("fail"))
            try:
                await harness.send(USER, "/fail")
                assert len(harness.errors.records) == 1
            finally:
                await harness.close()
        assert await SqlStorage(factory).get_state(key(sql_backend)) is None
    finally:
        await engine.dispose()


def test_redis_url_selects_redis_storage_keyed_by_bot_with_redis_locks(
    tmp_path: Path,
) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}",
        REDIS_URL="redis://127.0.0.1:6379/11",
    )
    storage = build_fsm_storage(
        settings, create_session_factory(create_engine(settings.DATABASE_URL))
    )
    assert isinstance(storage, RedisStorage)
    assert storage.key_builder.build(StorageKey(bot_id=5, chat_id=6, user_id=6)) == "fsm:5:6:6"
    assert isinstance(build_events_isolation(storage), RedisEventIsolation)


def test_without_redis_the_state_lives_in_the_database(tmp_path: Path) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    )
    factory = create_session_factory(create_engine(settings.DATABASE_URL))
    dispatcher = build_dispatcher(settings, factory)
    assert isinstance(dispatcher.storage, SqlStorage)
    assert isinstance(dispatcher.fsm.events_isolation, UserEventIsolation)
