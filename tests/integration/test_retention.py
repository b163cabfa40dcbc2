"""Personal data kept only while it serves (152-ФЗ): revocation forgets what /logout forgets, and
the retention job prunes delivered notifications, link failures and expired tokens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.process.app import conversation_eraser
from bot.settings import Settings
from services.clock import ManualClock, SystemClock
from services.linking import new_token, token_hash
from services.locks import job_lock
from services.retention import JOB, LINK_FAILURE_RETENTION, Pruned, prune, run_retention
from storage.db import create_engine, create_session_factory
from storage.migrate import upgrade
from storage.models import Binding, FsmState, LinkFailure, LinkToken, OutboxMessage
from storage.states import RawState, StateKey
from tests import factories
from tests.api_support import AUTH, serve_api
from tests.conftest import TEST_REDIS_URL
from tests.fakes.bot_api import FakeBotAPI
from tests.harness import BotHarness, test_settings
from tests.processes import running, sqlite_url

DIRECTOR = 1001  # Telegram user of account 1, a director of organisation 10
SURNAME = "Войсковая"  # what the director searched for: a person's name in the chat's state
THIRTY_DAYS = timedelta(days=30)
AUTH_TOKEN = AUTH["Authorization"].removeprefix("Bearer ")


def outbox_row(clock: ManualClock, state: str, age: timedelta, **values: Any) -> OutboxMessage:
    moment = clock.now() - age
    return OutboxMessage(
        **{
            "channel": "telegram",
            "kind": "status_changed",
            "account_id": 3,
            "chat_id": 1003,
            "payload": {},
            "state": state,
            "attempts": 1,
            "available_at": moment,
            "created_at": moment,
            "sent_at": moment if state == "sent" else None,
            **values,
        }
    )


async def all_rows(session_factory: async_sessionmaker[AsyncSession], model: Any) -> list[Any]:
    async with session_factory() as session:
        return list(await session.scalars(select(model).order_by(model.id)))


# -- revocation ---------------------------------------------------------------------------------


@pytest.fixture(params=["sql", "redis"])
async def storage_harness(
    request: pytest.FixtureRequest,
    api: FakeBotAPI,
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    seeded: None,
) -> AsyncIterator[BotHarness]:
    """The bot with its FSM state in the database, or in Redis (with TEST_REDIS_URL)."""
    redis_url = None
    if request.param == "redis":
        if not TEST_REDIS_URL:
            pytest.skip("needs Redis: set TEST_REDIS_URL=redis://HOST:PORT/DB")
        redis_url = TEST_REDIS_URL
    settings = test_settings(api, database_url, REDIS_URL=redis_url, API_TOKEN=AUTH_TOKEN)
    harness = BotHarness(api, settings, session_factory, clock)
    key = StateKey(harness.bot.id, DIRECTOR, DIRECTOR)
    await harness.dp["runner"].states.clear(key)  # nothing left from an earlier run
    yield harness
    await harness.close()


@pytest.mark.parametrize("how", ["logout", "revocation"])
async def test_revocation_forgets_what_logout_forgets(
    storage_harness: BotHarness,
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    how: str,
) -> None:
    harness = storage_harness
    await factories.store(
        session_factory,
        outbox_row(clock, "sent", timedelta(hours=1), account_id=1, chat_id=DIRECTOR),
    )
    await harness.send(DIRECTOR, SURNAME)  # a search: the chat's state holds the name
    runner = harness.dp["runner"]
    key = StateKey(harness.bot.id, DIRECTOR, DIRECTOR)

    async def state() -> RawState:
        async with session_factory() as session:
            _, raw = await runner.states.load(session, key)
            return raw

    raw = await state()
    assert raw.data is not None
    assert raw.data["search"] == SURNAME

    if how == "logout":
        await harness.send(DIRECTOR, "/logout")
        await harness.press(DIRECTOR, "Да, отвязать")
    else:
        async with serve_api(
            engine,
            session_factory,
            clock,
            harness.settings,
            forget_conversation=conversation_eraser(runner, harness.bot.id),
        ) as client:
            response = await client.delete("/api/v1/accounts/1/telegram", headers=AUTH)
            assert response.status == 200
    harness.assert_no_errors()

    assert (await state()).empty
    async with session_factory() as session:
        link = await session.scalar(select(Binding.id).where(Binding.account_id == 1))
        assert link is None
        assert list(await session.scalars(select(FsmState))) == []
        chat_rows = await session.scalars(
            select(OutboxMessage).where(OutboxMessage.chat_id == DIRECTOR)
        )
        # the sent push went with the binding; only the notice of the revocation is written
        kinds = [row.kind for row in chat_rows]
    assert kinds == ([] if how == "logout" else ["unlinked"])


# -- retention ----------------------------------------------------------------------------------


async def test_the_job_prunes_what_has_outlived_its_use(
    session_factory: async_sessionmaker[AsyncSession], clock: ManualClock, seeded: None
) -> None:
    day = timedelta(days=1)
    kept_rows = [
        outbox_row(clock, "sent", THIRTY_DAYS - day),
        outbox_row(clock, "failed", THIRTY_DAYS - day),
        outbox_row(clock, "held", THIRTY_DAYS - day),
        outbox_row(clock, "pending", THIRTY_DAYS + day),  # still to be delivered
        # a decision the web module has not taken yet: retried until it does
        outbox_row(clock, "pending", 400 * day, channel="webhook", chat_id=None),
    ]
    old_rows = [
        outbox_row(clock, "sent", THIRTY_DAYS + day),
        outbox_row(clock, "failed", THIRTY_DAYS + day),
        outbox_row(clock, "held", THIRTY_DAYS + day),
        outbox_row(clock, "sent", THIRTY_DAYS + day, channel="webhook", chat_id=None),
    ]
    async with session_factory() as session:
        session.add_all([*kept_rows, *old_rows])
        for failed_ago in (timedelta(minutes=1), 2 * LINK_FAILURE_RETENTION):
            session.add(
                LinkFailure(messenger="telegram", user_id=2000, created_at=clock.now() - failed_ago)
            )
        for expired_ago in (timedelta(hours=1), 2 * day):
            session.add(token(clock, expires_at=clock.now() - expired_ago))
        session.add(token(clock, expires_at=clock.now() + timedelta(minutes=5)))
        await session.commit()
        kept_ids = [row.id for row in kept_rows]

    assert await run_retention(session_factory, clock, THIRTY_DAYS) == Pruned(
        outbox=4, link_failures=1, link_tokens=1
    )
    assert [row.id for row in await all_rows(session_factory, OutboxMessage)] == kept_ids
    [failure] = await all_rows(session_factory, LinkFailure)
    assert failure.created_at == clock.now() - timedelta(minutes=1)
    tokens = await all_rows(session_factory, LinkToken)
    assert sorted(t.expires_at - clock.now() for t in tokens) == [
        -timedelta(hours=1),
        timedelta(minutes=5),
    ]
    # a second run finds nothing left to prune
    assert await run_retention(session_factory, clock, THIRTY_DAYS) == Pruned()


def token(clock: ManualClock, *, expires_at: datetime) -> LinkToken:
    return LinkToken(
        token_hash=token_hash(new_token()),
        kind="bot",
        messenger="telegram",
        user_id=2000,
        chat_id=2000,
        created_at=expires_at - timedelta(minutes=10),
        expires_at=expires_at,
    )


async def test_the_job_deletes_in_batches(
    session_factory: async_sessionmaker[AsyncSession], clock: ManualClock, seeded: None
) -> None:
    await factories.store(
        session_factory, *(outbox_row(clock, "sent", 2 * THIRTY_DAYS) for _ in range(7))
    )
    pruned = await prune(session_factory, clock.now(), THIRTY_DAYS, batch=3)
    assert pruned.outbox == 7
    assert await all_rows(session_factory, OutboxMessage) == []


async def test_one_process_at_a_time(
    session_factory: async_sessionmaker[AsyncSession], clock: ManualClock, seeded: None
) -> None:
    await factories.store(session_factory, outbox_row(clock, "sent", 2 * THIRTY_DAYS))
    async with job_lock(session_factory, JOB, clock=clock) as acquired:
        assert acquired
        assert await run_retention(session_factory, clock, THIRTY_DAYS) is None
    assert len(await all_rows(session_factory, OutboxMessage)) == 1


def test_the_period_is_a_setting_of_30_days_by_default() -> None:
    assert Settings(_env_file=None).outbox_retention == THIRTY_DAYS  # type: ignore[call-arg]
    settings = Settings(_env_file=None, OUTBOX_RETENTION_DAYS=7)  # type: ignore[call-arg]
    assert settings.outbox_retention == timedelta(days=7)


# -- in the processes ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["run", "dispatcher"])
async def test_the_bot_and_the_dispatcher_run_the_job(tmp_path: Path, command: str) -> None:
    url = sqlite_url(tmp_path)
    engine = create_engine(url)
    await upgrade(engine)
    clock = SystemClock()
    async with create_session_factory(engine)() as session:
        await factories.seed_school(session)
        session.add(outbox_row(ManualClock(clock.now()), "sent", 2 * THIRTY_DAYS))
        session.add(outbox_row(ManualClock(clock.now()), "sent", timedelta(days=1)))
        await session.commit()

    async def rows_left() -> int:
        return len(await all_rows(create_session_factory(engine), OutboxMessage))

    async with FakeBotAPI() as api:
        env = {"BOT_TOKEN": api.token, "TELEGRAM_API_URL": api.url, "WEB_PORT": "0"}
        async with running(tmp_path, command, DATABASE_URL=url, **env) as bot:
            left = 2
            for _ in range(600):  # a safety net of about a minute, not a speed requirement
                left = await rows_left()
                if left == 1 or bot.returncode is not None:
                    break
                await asyncio.sleep(0.1)
            assert left == 1, bot.stderr()
            assert await bot.terminate() == 0, bot.stderr()
    await engine.dispose()
