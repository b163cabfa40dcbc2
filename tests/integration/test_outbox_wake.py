"""A commit that queued pushes wakes the dispatcher at once: in the same process directly, in
another process on PostgreSQL through LISTEN/NOTIFY (storage/outbox_signal.py).

Every dispatcher here polls once an hour: a push that arrives within the test's patience arrived
because a commit woke it, not because it looked by itself.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.conversation.intents import AppAction, AppIntent, StatusCode
from bot.screens.screen import Screen
from bot.telegram.sender import TelegramSender
from services.clock import SystemClock
from services.outbox import OutboxWorker, chat_unblocked, new_row
from storage import outbox_signal
from storage.repositories import Repositories
from tests.bot.test_pushes import NUMBER, add_application
from tests.conftest import TEST_DATABASE_URL
from tests.fakes.bot_api import FakeBotAPI, Message
from tests.harness import BotHarness
from tests.notices import NOTICE, notices_rendered
from tests.processes import ROOT, clean_env

NEVER = 3600.0  # the dispatchers' poll interval: they look by themselves once an hour
PATIENCE = 30.0  # seconds a test waits for a push: a safety net on a loaded machine, not a goal
DIRECTOR, OTHER_DIRECTOR, APPLICANT = 1001, 1002, 1003

pytestmark = pytest.mark.usefixtures("seeded")


@pytest.fixture(autouse=True)
def notice_kind() -> Iterator[None]:
    with notices_rendered():
        yield


@pytest.fixture
async def dispatcher(harness: BotHarness) -> AsyncIterator[OutboxWorker[Screen]]:
    """The notification dispatcher running beside the bot, polling once an hour."""
    worker = TelegramSender(harness.bot, harness.settings).worker(
        harness.session_factory, SystemClock(), poll_interval=NEVER
    )
    task = asyncio.create_task(worker.run())
    await asyncio.sleep(0.3)  # it has looked once, found nothing, and waits for an hour
    yield worker
    worker.stop()
    await task


def bot_messages(api: FakeBotAPI, chat_id: int) -> list[Message]:
    return [message for message in api.chat(chat_id) if message.from_bot]


async def pushes_arrive(api: FakeBotAPI, chat_id: int, count: int) -> None:
    async with asyncio.timeout(PATIENCE):
        while len(bot_messages(api, chat_id)) < count:  # noqa: ASYNC110 - the double's log
            await asyncio.sleep(0.02)


def notice(channel: str = "telegram", **columns: Any) -> dict[str, Any]:
    return new_row(channel, NOTICE, now=datetime.now(UTC), **columns)


async def test_a_decision_in_the_conversation_wakes_the_dispatcher(
    harness: BotHarness, dispatcher: OutboxWorker[Screen]
) -> None:
    # The web module adds an application: its push to the directors goes out at once.
    await add_application(harness.session_factory, SystemClock())  # type: ignore[arg-type]
    await pushes_arrive(harness.api, DIRECTOR, 1)
    await pushes_arrive(harness.api, OTHER_DIRECTOR, 1)
    push = bot_messages(harness.api, DIRECTOR)[-1]
    # The director approves from the push; the applicant hears of it at once.
    card = AppIntent(action=AppAction.OPEN, number=NUMBER, status=StatusCode.NEW)
    await harness.press_data(DIRECTOR, card.to(AppAction.APPROVE).pack(), push.message_id)
    prompt = harness.api.last_bot_message(DIRECTOR)
    await harness.press_data(
        DIRECTOR, card.to(AppAction.APPROVE_NO_COMMENT).pack(), prompt.message_id
    )
    await pushes_arrive(harness.api, APPLICANT, 1)
    assert "Подтверждена руководителем ОО" in bot_messages(harness.api, APPLICANT)[-1].text
    harness.assert_no_errors()


async def test_rows_written_in_one_statement_wake_it_too(
    harness: BotHarness, dispatcher: OutboxWorker[Screen]
) -> None:
    """The batch ingest's path (OutboxRepo.add_many)."""
    async with harness.session_factory() as session:
        await Repositories(session).outbox.add_many(
            [notice(chat_id=DIRECTOR), notice(chat_id=APPLICANT)]
        )
        await session.commit()
    await pushes_arrive(harness.api, DIRECTOR, 1)
    await pushes_arrive(harness.api, APPLICANT, 1)


async def test_a_rolled_back_write_wakes_nothing_and_leaves_nothing_behind(
    harness: BotHarness,
) -> None:
    woken: list[str] = []
    engine = outbox_signal.engine_of(harness.session_factory)
    assert engine is not None
    unregister = outbox_signal.register(engine, "telegram", lambda: woken.append("telegram"))
    try:
        async with harness.session_factory() as session:
            Repositories(session).outbox.add(**notice(chat_id=DIRECTOR))
            await session.rollback()
            assert woken == []
            # The same session, reused: a commit of nothing from the outbox wakes nobody.
            await session.commit()
            assert woken == []
            Repositories(session).outbox.add(**notice(chat_id=DIRECTOR))
            await session.commit()
            assert woken == ["telegram"]
        # Another channel's rows wake only that channel's dispatchers.
        async with harness.session_factory() as session:
            Repositories(session).outbox.add(**notice("webhook", application_number=1))
            await session.commit()
        assert woken == ["telegram"]
    finally:
        unregister()


async def test_released_held_rows_wake_their_messengers_dispatchers(harness: BotHarness) -> None:
    """A user back in a chat (chat_unblocked): the pushes held for them in that messenger go out
    at once; another messenger's dispatchers are not woken, nor anyone when nothing was held."""
    woken: list[str] = []
    engine = outbox_signal.engine_of(harness.session_factory)
    assert engine is not None
    unregisters = [
        outbox_signal.register(engine, channel, lambda c=channel: woken.append(c))
        for channel in ("telegram", "max")
    ]
    try:
        async with harness.session_factory() as session:
            Repositories(session).outbox.add(**notice("max", chat_id=77, held=True))
            await session.commit()
        woken.clear()  # the held row's own write (a held row is not sent; it woke "max")
        async with harness.session_factory() as session:
            assert await chat_unblocked(session, "telegram", 77, datetime.now(UTC)) == 0
            await session.commit()
        assert woken == []
        async with harness.session_factory() as session:
            assert await chat_unblocked(session, "max", 77, datetime.now(UTC)) == 1
            await session.commit()
        assert woken == ["max"]
    finally:
        for unregister in unregisters:
            unregister()


# --- another process, PostgreSQL -------------------------------------------------------------

WRITER = """
import asyncio, sys
from datetime import UTC, datetime
from storage.db import create_engine, create_session_factory
from storage.repositories import Repositories
from services.outbox import new_row

async def main(url: str, chat_id: int) -> None:
    engine = create_engine(url)
    async with create_session_factory(engine)() as session:
        row = new_row("telegram", sys.argv[3], now=datetime.now(UTC), chat_id=chat_id)
        Repositories(session).outbox.add(**row)
        await session.commit()
    await engine.dispose()

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


async def write_in_another_process(url: str, chat_id: int) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRITER,
        url,
        str(chat_id),
        NOTICE,
        cwd=ROOT,
        env=clean_env(),
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, stderr.decode(errors="replace")


ON_POSTGRESQL = pytest.param(
    "postgresql",
    marks=pytest.mark.skipif(
        TEST_DATABASE_URL is None,
        reason="LISTEN/NOTIFY is PostgreSQL's: set TEST_DATABASE_URL to run this test",
    ),
)


@pytest.mark.parametrize("database_url", [ON_POSTGRESQL], indirect=True)
async def test_a_commit_in_another_process_wakes_a_listening_dispatcher(
    harness: BotHarness,
) -> None:
    worker = TelegramSender(harness.bot, harness.settings).worker(
        harness.session_factory, SystemClock(), poll_interval=NEVER
    )
    task = asyncio.create_task(worker.run())
    try:
        async with asyncio.timeout(PATIENCE):
            while worker.listener is None:  # noqa: ASYNC110 - set by run() as it starts
                await asyncio.sleep(0.05)
            await worker.listener.listening.wait()
        await asyncio.sleep(0.3)  # its first look found nothing; it waits for an hour
        await write_in_another_process(harness.settings.DATABASE_URL, DIRECTOR)
        await pushes_arrive(harness.api, DIRECTOR, 1)
        assert worker.listener.received >= 1
    finally:
        worker.stop()
        await task
