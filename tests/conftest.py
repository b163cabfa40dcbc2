"""Shared fixtures: a real database per test (SQLite file always, PostgreSQL when
TEST_DATABASE_URL is set; tests/bot/ on SQLite alone unless marked `every_backend`), seeded
data, a controllable clock, the bot in Telegram (`harness`), in MAX (`max_harness`) or in each in
turn (`chat`, tests/chats.py); each test marked by its folder (unit, integration, bot, e2e)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import bot  # noqa: F401  (first: aiogram's types are then built on first use, as in the bot)
from services.clock import ManualClock
from storage.db import create_engine, create_session_factory
from storage.migrate import upgrade
from storage.models import Base
from tests import factories
from tests.chats import MESSENGERS, Chat, MaxChat, TelegramChat
from tests.fakes.bot_api import FakeBotAPI
from tests.fakes.max_api import FakeMaxAPI
from tests.harness import BotHarness, test_settings
from tests.max_harness import MaxHarness, max_settings

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL")

BACKENDS = ["sqlite", *(["postgresql"] if TEST_DATABASE_URL else [])]


async def reset_postgres(url: str) -> None:
    """Empty the PostgreSQL test database completely (schema and Alembic's version table)."""
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(DROP_LEFTOVER_CONNECTIONS))
            await connection.execute(text("DROP SCHEMA public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
    finally:
        await engine.dispose()


async def _migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


KINDS = ("unit", "integration", "bot", "e2e")
TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test carries the marker of its folder (tests/unit/ → `unit`, …), so `-m unit`
    selects by kind (tests/unit/test_layout_of_tests.py holds every test file to a folder)."""
    for item in items:
        path = item.path.resolve()
        if path.is_relative_to(TESTS) and path.relative_to(TESTS).parts[0] in KINDS:
            item.add_marker(path.relative_to(TESTS).parts[0])


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating every time)."""
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_migrated() -> str:
    assert TEST_DATABASE_URL is not None
    asyncio.run(reset_postgres(TEST_DATABASE_URL))
    asyncio.run(_migrate(TEST_DATABASE_URL))
    return TEST_DATABASE_URL


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`database_url` takes each backend in turn: SQLite, and PostgreSQL when TEST_DATABASE_URL
    is set. The conversation tests in tests/bot/ test the flows, which are the same on both,
    so they run on SQLite alone, unless marked `every_backend` (search, locks, constraints,
    times, statements: what the database decides); storage has its own tests on both in
    tests/integration/. A test of the conversation through `chat` runs in each messenger
    (`messenger`: "telegram", "max"). A test that parametrises either itself keeps its own."""
    if "chat" in metafunc.fixturenames and not parametrises(metafunc, "messenger"):
        metafunc.parametrize("messenger", MESSENGERS, indirect=True)
    if "database_url" not in metafunc.fixturenames or parametrises(metafunc, "database_url"):
        return
    kind = metafunc.definition.path.resolve().relative_to(TESTS).parts[0]
    every = kind != "bot" or metafunc.definition.get_closest_marker("every_backend") is not None
    metafunc.parametrize("database_url", BACKENDS if every else BACKENDS[:1], indirect=True)


def parametrises(metafunc: pytest.Metafunc, name: str) -> bool:
    """Whether the test parametrises `name` itself."""
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0]
        if name in (names.replace(" ", "").split(",") if isinstance(names, str) else names):
            return True
    return False


@pytest.fixture
def messenger(request: pytest.FixtureRequest) -> str:
    """The messenger the seeded people are bound in and `chat` speaks through: Telegram, or
    each in turn for a test through `chat` (see pytest_generate_tests)."""
    return str(getattr(request, "param", "telegram"))


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database of each backend in turn (see pytest_generate_tests)."""
    return empty_database(request, request.param, tmp_path)


def empty_database(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> str:
    """The URL of a migrated, empty database of `backend` ("sqlite" or "postgresql")."""
    if backend == "sqlite":
        path = tmp_path / "bot.sqlite3"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("postgres_migrated")
    asyncio.run(truncate_postgres(url))
    return url


async def truncate_postgres(url: str) -> None:
    """Empty every table of the migrated PostgreSQL test database, its ids starting again at 1.

    Tests run one after the other, so any other connection to the test database is left over
    from an earlier test (a background send still finishing, say): it is cut first, or its
    transaction and the emptying could each wait for a lock the other holds (a deadlock).
    DELETE, children first, rather than TRUNCATE: on tables of a few rows it is several times
    quicker (TRUNCATE makes new files for every table), and this runs before each test."""
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(DROP_LEFTOVER_CONNECTIONS))
            for table in reversed(Base.metadata.sorted_tables):
                await connection.execute(table.delete())
            await connection.execute(text(RESTART_SEQUENCES))
    finally:
        await engine.dispose()


RESTART_SEQUENCES = (
    "SELECT count(setval(format('%I.%I', schemaname, sequencename), 1, false)) "
    "FROM pg_sequences WHERE schemaname = current_schema()"
)
DROP_LEFTOVER_CONNECTIONS = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


@pytest.fixture(autouse=True, scope="session")
def no_tls_grace_on_closing_bots() -> Iterator[None]:
    """aiogram's AiohttpSession.close() sleeps 250 ms for TLS connections to close (aiohttp's
    graceful shutdown); the doubles speak plain HTTP on 127.0.0.1, so in tests a bot's session
    closes without that pause, which would otherwise add a quarter of a second to every test
    that runs a bot (hundreds)."""
    from aiogram.client.session.aiohttp import AiohttpSession  # after `import bot`, above

    async def close(self: AiohttpSession) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(AiohttpSession, "close", close)
        yield


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture(params=BACKENDS)
async def bare_engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An engine on a database without any schema, of each backend in turn: a migration's
    test migrates it to the revision it starts from."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'old.sqlite3'}"
    else:
        url = os.environ["TEST_DATABASE_URL"]
        await reset_postgres(url)
    engine = create_engine(url)
    yield engine
    await engine.dispose()


@pytest.fixture
def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(engine)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    """The Bot API double on 127.0.0.1 with the seeded users of factories.seed_school."""
    async with FakeBotAPI() as api:
        for account_id in range(1, 8):
            api.add_user(account_id + 1000, first_name=f"Пользователь{account_id}")
        api.add_user(2000, first_name="Незнакомец")
        yield api


@pytest.fixture
async def max_api() -> AsyncIterator[FakeMaxAPI]:
    """The MAX Bot API double on 127.0.0.1 with the people of `api` (factories.user_id_of)."""
    names = {person: f"Пользователь{person - 1000}" for person in range(1001, 1008)}
    async with FakeMaxAPI() as api:
        for person, name in {**names, 2000: "Незнакомец"}.items():
            user, dialog = factories.user_id_of(person, "max"), factories.chat_id_of(person, "max")
            api.add_user(user, name, chat_id=dialog)
        yield api


@pytest.fixture
async def harness(
    api: FakeBotAPI,
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> AsyncIterator[BotHarness]:
    harness = BotHarness(api, test_settings(api, database_url), session_factory, clock)
    yield harness
    await harness.close()


@pytest.fixture
async def max_harness(
    max_api: FakeMaxAPI,
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> AsyncIterator[MaxHarness]:
    harness = MaxHarness(max_api, max_settings(max_api, database_url), session_factory, clock)
    yield harness
    await harness.close()


@pytest.fixture
def chat(
    request: pytest.FixtureRequest,
    messenger: str,
    session_factory: async_sessionmaker[AsyncSession],  # its database (database_url) for both
) -> Chat:
    """The bot in `messenger`, driven as its people would (tests/chats.py)."""
    if messenger == "telegram":
        return TelegramChat(request.getfixturevalue("harness"))
    return MaxChat(request.getfixturevalue("max_harness"))


@pytest.fixture
async def seeded(session_factory: async_sessionmaker[AsyncSession], messenger: str) -> None:
    """Two schools with directors, applicants and staff, all linked in `messenger` (see
    factories.seed_school)."""
    async with session_factory() as session:
        await factories.seed_school(session, messenger)
        await session.commit()
