"""The MAX outbox's dispatcher (bot/notifier.py's `build_max_notifier`) against the MAX Bot API
double with MAX's limits: 2 messages a second per dialog (documented), 30 a second overall
(a partner's figure): everything delivered once, in order per dialog, without a single 429."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.conversation.effects import Show
from bot.conversation.pushes import RENDERERS, PushContext
from bot.max.client import MaxClient
from bot.max.effects import MaxExecutor
from bot.max.sender import MAX_CHANNEL, build_max_notifier
from bot.screens.screen import Screen
from services.clock import SystemClock
from services.outbox import OutboxWorker, RetryPolicy
from storage.models import OutboxMessage
from tests.fakes.max_api import Call, FakeMaxAPI
from tests.max_harness import max_settings

KIND = "max_test_notice"
TEXT = re.compile(r"^Уведомление (\d+)$")
USERS = [7_100_000 + i for i in range(6)]
PER_CHAT = 6
LIMIT = 60.0


@pytest.fixture(autouse=True)
def notice_kind() -> Iterator[None]:
    async def notice(context: PushContext) -> Screen:
        return Screen(f"Уведомление {context.row.id}")

    RENDERERS[KIND] = notice
    yield
    del RENDERERS[KIND]


@pytest.fixture
async def max_api() -> AsyncIterator[FakeMaxAPI]:
    async with FakeMaxAPI() as api:
        for user in USERS:
            api.add_user(user)
        api.set_rate_limits(2, overall_per_second=30)
        yield api


async def add_notices(
    session_factory: async_sessionmaker[AsyncSession], chats: list[int]
) -> list[int]:
    now = SystemClock().now()
    async with session_factory() as session:
        rows = [
            OutboxMessage(
                channel=MAX_CHANNEL,
                kind=KIND,
                chat_id=chat,
                payload={},
                state="pending",
                attempts=0,
                available_at=now,
                created_at=now,
            )
            for chat in chats
        ]
        session.add_all(rows)
        await session.commit()
        return [row.id for row in rows]


def row_of(call: Call) -> int:
    match = TEXT.match(str((call.body or {}).get("text")))
    assert match is not None
    return int(match[1])


async def run_until_settled(
    worker: OutboxWorker[Screen], session_factory: async_sessionmaker[AsyncSession]
) -> None:
    task = asyncio.create_task(worker.run())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LIMIT
    try:
        while True:
            async with session_factory() as session:
                pending = await session.scalar(
                    select(func.count())
                    .select_from(OutboxMessage)
                    .where(OutboxMessage.state == "pending")
                )
            if not pending:
                break
            assert loop.time() < deadline, "rows still pending"
            assert not task.done(), task
            await asyncio.sleep(0.1)
    finally:
        worker.stop()
        await task


async def test_pushes_keep_maxs_limits_without_a_429(
    max_api: FakeMaxAPI,
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    chats = [max_api.chat_id_of(user) for user in USERS]
    ids = await add_notices(session_factory, [chats[i % len(chats)] for i in range(PER_CHAT * 6)])
    client = MaxClient(max_api.token, max_api.url)
    settings = max_settings(max_api, database_url)
    worker = build_max_notifier(
        client, session_factory, settings, SystemClock(), policy=RetryPolicy(base=0.05, cap=0.2)
    )
    try:
        await run_until_settled(worker, session_factory)
    finally:
        await client.close()
    sent = [call for call in max_api.calls_of("POST /messages") if call.ok]
    assert sorted(row_of(call) for call in sent) == ids  # each exactly once
    assert max_api.too_many_requests == 0
    per_chat: dict[int, list[Call]] = defaultdict(list)
    for call in sent:
        per_chat[int(call.query["chat_id"])].append(call)
    assert all(
        [row_of(c) for c in calls] == sorted(map(row_of, calls)) for calls in per_chat.values()
    )
    gaps = [b.time - a.time for calls in per_chat.values() for a, b in itertools.pairwise(calls)]
    assert min(gaps) >= 0.5 - 0.01  # 2 a second per dialog
    async with session_factory() as session:
        states = set(await session.scalars(select(OutboxMessage.state)))
    assert states == {"sent"}


async def test_a_stopped_bot_holds_the_dialogs_pushes(
    max_api: FakeMaxAPI,
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    max_api.stop_bot(USERS[0])
    blocked, other = max_api.chat_id_of(USERS[0]), max_api.chat_id_of(USERS[1])
    await add_notices(session_factory, [blocked, blocked, other])
    client = MaxClient(max_api.token, max_api.url)
    worker = build_max_notifier(
        client, session_factory, max_settings(max_api, database_url), SystemClock()
    )
    try:
        await run_until_settled(worker, session_factory)
    finally:
        await client.close()
    async with session_factory() as session:
        rows = {row.id: row for row in await session.scalars(select(OutboxMessage))}
    assert [rows[i].state for i in sorted(rows)] == ["held", "held", "sent"]
    assert [m.text for m in max_api.chat(USERS[1])] == [f"Уведомление {max(rows)}"]


async def test_a_reply_and_a_push_to_one_dialog_take_turns_without_a_429(
    max_api: FakeMaxAPI,
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """The bot answers a user (two messages) while the dispatcher of the same process pushes two
    rows to that user's dialog: one client, one pacing of the dialog (bot/max/client.py), so
    MAX's 2 a second are kept together and nothing meets a 429."""
    chat = max_api.chat_id_of(USERS[0])
    await add_notices(session_factory, [chat, chat])
    client = MaxClient(max_api.token, max_api.url)
    worker = build_max_notifier(
        client, session_factory, max_settings(max_api, database_url), SystemClock()
    )
    executor = MaxExecutor(client, chat)
    try:
        await asyncio.gather(
            run_until_settled(worker, session_factory),
            executor.execute([Show(Screen("Ответ 1")), Show(Screen("Ответ 2"))]),
        )
    finally:
        await client.close()
    texts = [m.text for m in max_api.chat(USERS[0])]
    assert sorted(texts) == sorted(["Ответ 1", "Ответ 2", *(f"Уведомление {i}" for i in (1, 2))])
    assert max_api.too_many_requests == 0
    sent = [call.time for call in max_api.calls_of("POST /messages")]
    assert all(b - a >= 0.5 - 0.01 for a, b in itertools.pairwise(sent))
