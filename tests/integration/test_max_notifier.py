"""The MAX outbox's dispatcher (bot/max/sender.py, `MaxSender(...).worker`) against the MAX Bot API
double with MAX's limits: 2 messages a second per dialog (documented), 30 a second overall
(a partner's figure): everything delivered once, in order per dialog, without a single 429."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.conversation.effects import Show
from bot.max.client import MaxClient
from bot.max.effects import MaxExecutor
from bot.max.sender import MAX_CHANNEL, MaxSender
from bot.screens.screen import Screen
from services.clock import SystemClock
from services.outbox import RetryPolicy
from storage.models import OutboxMessage
from tests.fakes.max_api import Call, FakeMaxAPI
from tests.max_harness import max_settings
from tests.notices import add_notices, notice_row, notices_rendered, run_until_settled

USERS = [7_100_000 + i for i in range(6)]
PER_CHAT = 6


@pytest.fixture(autouse=True)
def notice_kind() -> Iterator[None]:
    with notices_rendered():
        yield


@pytest.fixture
async def max_api() -> AsyncIterator[FakeMaxAPI]:
    async with FakeMaxAPI() as api:
        for user in USERS:
            api.add_user(user)
        api.set_rate_limits(2, overall_per_second=30)
        yield api


def row_of(call: Call) -> int:
    row_id = notice_row((call.body or {}).get("text"))
    assert row_id is not None
    return row_id


async def test_pushes_keep_maxs_limits_without_a_429(
    max_api: FakeMaxAPI,
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    chats = [max_api.chat_id_of(user) for user in USERS]
    ids = await add_notices(
        session_factory, [chats[i % len(chats)] for i in range(PER_CHAT * 6)], channel=MAX_CHANNEL
    )
    client = MaxClient(max_api.token, max_api.url)
    settings = max_settings(max_api, database_url)
    worker = MaxSender(client, settings).worker(
        session_factory, SystemClock(), policy=RetryPolicy(base=0.05, cap=0.2)
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
    await add_notices(session_factory, [blocked, blocked, other], channel=MAX_CHANNEL)
    client = MaxClient(max_api.token, max_api.url)
    worker = MaxSender(client, max_settings(max_api, database_url)).worker(
        session_factory, SystemClock()
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
    await add_notices(session_factory, [chat, chat], channel=MAX_CHANNEL)
    client = MaxClient(max_api.token, max_api.url)
    worker = MaxSender(client, max_settings(max_api, database_url)).worker(
        session_factory, SystemClock()
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
