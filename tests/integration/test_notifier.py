"""The dispatcher against the Bot API double: limits, retries, 429, blocked chats, load."""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.cli.main import EXIT_SETTINGS, main, parser
from bot.conversation.pushes import RENDERERS, SEND_TIMEOUT, PushContext
from bot.process.dispatcher import start_background
from bot.screens.screen import Screen
from bot.settings import Settings
from bot.telegram.sender import TelegramSender
from services.clock import ManualClock, SystemClock
from services.outbox import (
    FLOOD_KEYS,
    MAX_RETRY_AFTER,
    Flood,
    OutboxWorker,
    RetryPolicy,
    chat_blocked,
)
from storage.models import Binding, OutboxMessage
from storage.repositories import Repositories
from tests.conftest import BACKENDS
from tests.fakes.bot_api import Call, FakeBotAPI
from tests.harness import BotHarness, test_settings
from tests.notices import (
    SETTLE_LIMIT,
    add_notices,
    notice_row,
    notices_rendered,
    pending_count,
    run_until_settled,
)

FAST_RETRIES = RetryPolicy(base=0.2, cap=1.0, max_attempts=6)


@pytest.fixture(autouse=True)
def notice_kind() -> Iterator[None]:
    with notices_rendered():
        yield


async def rows_by_id(session_factory: async_sessionmaker[AsyncSession]) -> dict[int, OutboxMessage]:
    async with session_factory() as session:
        return {row.id: row for row in await session.scalars(select(OutboxMessage))}


def notifier(
    harness: BotHarness,
    settings: Settings | None = None,
    *,
    send_timeout: float = SEND_TIMEOUT,
    policy: RetryPolicy = FAST_RETRIES,
) -> OutboxWorker[Screen]:
    sender = TelegramSender(harness.bot, settings or harness.settings, send_timeout)
    return sender.worker(harness.session_factory, SystemClock(), policy=policy)


def deliveries(api: FakeBotAPI) -> list[tuple[int, Call]]:
    """(row id, call) of every sendMessage the double carried out, in order of arrival."""
    found = []
    for call in api.calls_of("sendMessage"):
        row_id = notice_row(call.params.get("text", ""))
        if call.ok and row_id is not None:
            found.append((row_id, call))
    return sorted(found, key=lambda item: item[1].time)


async def link_of(session_factory: async_sessionmaker[AsyncSession], chat: int) -> Binding:
    async with session_factory() as session:
        link = await session.scalar(select(Binding).where(Binding.chat_id == chat))
    assert link is not None
    return link


async def test_rows_are_sent_in_order_per_chat_keeping_message_ids(harness: BotHarness) -> None:
    ids = await add_notices(harness.session_factory, [1001, 1002, 1001, 1001])
    await run_until_settled(notifier(harness), harness.session_factory)
    rows = await rows_by_id(harness.session_factory)
    assert {row.state for row in rows.values()} == {"sent"}
    sent_to_1001 = [m for m in harness.api.chat(1001) if m.from_bot]
    assert [m.text for m in sent_to_1001] == [f"Уведомление {i}" for i in (ids[0], ids[2], ids[3])]
    assert [rows[i].message_id for i in (ids[0], ids[2], ids[3])] == [
        str(m.message_id) for m in sent_to_1001
    ]
    assert all(rows[i].sent_at is not None for i in ids)
    times = [call.time for row_id, call in deliveries(harness.api) if row_id != ids[1]]
    assert all(later - earlier >= 1.0 for earlier, later in itertools.pairwise(times))


async def test_429_waits_retry_after_without_spending_an_attempt(harness: BotHarness) -> None:
    [row_id] = await add_notices(harness.session_factory, [1001])
    harness.api.fail_next("sendMessage", error_code=429, retry_after=1)
    worker = notifier(harness)
    await run_until_settled(worker, harness.session_factory)
    first, second = harness.api.calls_of("sendMessage")
    assert first.status == 429
    assert second.ok
    assert second.time - first.time >= 1.0
    row = (await rows_by_id(harness.session_factory))[row_id]
    assert (row.state, row.attempts) == ("sent", 0)  # a 429 spends no attempt
    assert row.last_error == "429: Too Many Requests: retry after 1"
    assert worker.stats.rate_limited == 1


async def test_a_429_for_one_chat_holds_back_that_chat_only(harness: BotHarness) -> None:
    """Telegram asks chat 1001 to wait an hour; the other chats' pushes go on meanwhile, and
    the dispatcher keeps its pace (a chat's 429 is the chat's own limit, not the bot's)."""
    late = await add_notices(harness.session_factory, [1001, 1001])
    others = await add_notices(harness.session_factory, [1002, 1003, 1002, 1003, 1002])
    harness.api.fail_next("sendMessage", error_code=429, retry_after=3600, chat_id=1001)
    worker = notifier(harness)
    started = SystemClock().now()
    task = asyncio.create_task(worker.run())
    try:
        # A safety net, not a speed requirement: with every chat paused they never go.
        async with asyncio.timeout(SETTLE_LIMIT):
            while sorted(row_id for row_id, _ in deliveries(harness.api)) != others:
                assert not task.done(), task
                await asyncio.sleep(0.05)
        loop_now = asyncio.get_running_loop().time()
        assert worker.limiter.paused_until <= loop_now
        assert worker.limiter.current == harness.settings.NOTIFY_RATE
    finally:
        worker.stop()
        await task
    calls = harness.api.calls_of("sendMessage")
    assert [call.params["chat_id"] for call in calls if not call.ok] == [1001]
    assert all(call.params["chat_id"] != 1001 for call in calls if call.ok)
    rows = await rows_by_id(harness.session_factory)
    assert [(rows[i].state, rows[i].attempts) for i in late] == [("pending", 0)] * 2
    # the hour is capped at MAX_RETRY_AFTER: asked again in ten minutes
    assert rows[late[0]].last_error == "429: Too Many Requests: retry after 3600"
    cap = timedelta(seconds=MAX_RETRY_AFTER)
    assert started + cap <= rows[late[0]].available_at <= SystemClock().now() + cap
    assert worker.stats.rate_limited == 1


async def test_429s_for_several_chats_slow_every_send(harness: BotHarness) -> None:
    """429s for FLOOD_KEYS chats in a row: the bot as a whole is over Telegram's limit, so
    every send pauses (as long as the last 429 asks) and the rate drops by a fifth."""
    chats = [1001, 1002, 1003]
    assert len(chats) == FLOOD_KEYS
    ids = await add_notices(harness.session_factory, chats)
    for chat in chats:
        harness.api.fail_next("sendMessage", error_code=429, retry_after=300, chat_id=chat)
    worker = notifier(harness)
    assert await worker.drain() == 3
    loop_now = asyncio.get_running_loop().time()
    assert worker.limiter.paused_until > loop_now + 200  # paused, about 300 s from the third
    assert worker.limiter.current == harness.settings.NOTIFY_RATE * 0.8  # slowed down once
    rows = await rows_by_id(harness.session_factory)
    assert [(rows[i].state, rows[i].attempts) for i in ids] == [("pending", 0)] * 3
    assert worker.stats.rate_limited == 3


def test_the_flood_rule_counts_different_chats_within_the_window() -> None:
    flood = Flood(keys=3, window=10.0)
    assert not flood.overall(1001, 0.0)
    assert not flood.overall(1001, 1.0)  # one chat again: its own limit
    assert not flood.overall(1002, 2.0)
    assert flood.overall(1003, 3.0)  # a third chat within 10 s
    assert not flood.overall(1004, 20.0)  # the earlier ones are out of the window
    assert not flood.overall(1005, 21.0)
    assert flood.overall(1006, 29.0)


async def test_telegrams_retry_after_is_capped(harness: BotHarness) -> None:
    [row_id] = await add_notices(harness.session_factory, [1001])
    harness.api.fail_next("sendMessage", error_code=429, retry_after=10**12)
    clock = ManualClock(SystemClock().now())  # the row is due, and time stands still
    worker = TelegramSender(harness.bot, harness.settings).worker(harness.session_factory, clock)
    assert await worker.drain() == 1
    row = (await rows_by_id(harness.session_factory))[row_id]
    assert (row.state, row.attempts) == ("pending", 0)
    assert row.available_at == clock.now() + timedelta(seconds=MAX_RETRY_AFTER)


async def test_server_errors_and_timeouts_are_retried_with_backoff(harness: BotHarness) -> None:
    [row_id] = await add_notices(harness.session_factory, [1001])
    harness.api.fail_next("sendMessage", error_code=502, times=2)
    await run_until_settled(notifier(harness), harness.session_factory)
    row = (await rows_by_id(harness.session_factory))[row_id]
    assert (row.state, row.attempts, row.last_error) == ("sent", 2, "5xx: Bad Gateway")
    calls = harness.api.calls_of("sendMessage")
    assert [call.status for call in calls] == [502, 502, 200]
    gaps = [later.time - earlier.time for earlier, later in itertools.pairwise(calls)]
    assert gaps[0] >= FAST_RETRIES.base / 2
    assert gaps[1] >= FAST_RETRIES.base


async def test_a_timed_out_send_is_retried(harness: BotHarness) -> None:
    [row_id] = await add_notices(harness.session_factory, [1001])
    harness.api.timeout_next("sendMessage", seconds=1.0)
    await run_until_settled(notifier(harness, send_timeout=0.3), harness.session_factory)
    row = (await rows_by_id(harness.session_factory))[row_id]
    assert (row.state, row.attempts, row.last_error) == ("sent", 1, "network: request timeout")
    # The request went through before the answer was lost: Telegram has no idempotency key,
    # so the user sees the push twice. The second copy is the one recorded.
    copies = [m for m in harness.api.chat(1001) if m.from_bot]
    assert len(copies) == 2
    assert row.message_id == str(copies[1].message_id)


async def test_persistent_failures_fail_with_the_reason_and_the_chat_moves_on(
    harness: BotHarness,
) -> None:
    ids = await add_notices(harness.session_factory, [1001, 1001])
    harness.api.fail_next("sendMessage", error_code=500, times=3)
    policy = RetryPolicy(base=0.1, cap=0.2, max_attempts=3)
    await run_until_settled(notifier(harness, policy=policy), harness.session_factory)
    rows = await rows_by_id(harness.session_factory)
    failed, delivered = rows[ids[0]], rows[ids[1]]
    assert (failed.state, failed.attempts) == ("failed", 3)
    assert failed.last_error == "5xx: Internal Server Error (attempt 3 of 3)"
    assert delivered.state == "sent"


async def test_other_bad_requests_fail_at_once(harness: BotHarness) -> None:
    async def broken(context: PushContext) -> Screen:
        return Screen("<b>незакрытый тег")

    RENDERERS["test_broken"] = broken
    try:
        ids = await add_notices(harness.session_factory, [1001, 1001], kind="test_broken")
        await run_until_settled(notifier(harness), harness.session_factory)
    finally:
        del RENDERERS["test_broken"]
    rows = await rows_by_id(harness.session_factory)
    assert [(rows[i].state, rows[i].attempts) for i in ids] == [("failed", 1)] * 2
    assert (rows[ids[0]].last_error or "").startswith("400: Bad Request: can't parse entities")


@pytest.mark.usefixtures("seeded")
async def test_403_marks_the_link_blocked_and_holds_the_chats_rows(harness: BotHarness) -> None:
    ids = await add_notices(harness.session_factory, [1003, 1004, 1003, 1003])
    harness.api.block(1003)
    harness.api.take_updates()  # the my_chat_member update is lost here: only the 403 tells
    await run_until_settled(notifier(harness), harness.session_factory)
    rows = await rows_by_id(harness.session_factory)
    assert [rows[i].state for i in ids] == ["held", "sent", "held", "held"]
    assert rows[ids[0]].last_error == "403: Forbidden: bot was blocked by the user"
    assert [call.status for call in harness.api.calls_of("sendMessage")].count(403) == 1
    assert (await link_of(harness.session_factory, 1003)).blocked

    # The user comes back: Telegram sends my_chat_member (member), then the message.
    await harness.send(1003, "/start")
    assert not (await link_of(harness.session_factory, 1003)).blocked
    await run_until_settled(notifier(harness), harness.session_factory)
    texts = [m.text for m in harness.api.chat(1003) if m.from_bot and notice_row(m.text)]
    assert texts == [f"Уведомление {i}" for i in (ids[0], ids[2], ids[3])]
    harness.assert_no_errors()


@pytest.mark.usefixtures("seeded")
async def test_any_update_from_a_blocked_user_releases_their_pushes(harness: BotHarness) -> None:
    ids = await add_notices(harness.session_factory, [1003, 1003])
    async with harness.session_factory() as session:
        await chat_blocked(session, "telegram", 1003, SystemClock().now())
        await session.commit()
    await harness.send(1003, "/start")  # no my_chat_member: the bot was never blocked there
    assert not (await link_of(harness.session_factory, 1003)).blocked
    await run_until_settled(notifier(harness), harness.session_factory)
    rows = await rows_by_id(harness.session_factory)
    assert [rows[i].state for i in ids] == ["sent", "sent"]
    harness.assert_no_errors()


@pytest.mark.usefixtures("seeded")
async def test_my_chat_member_updates_keep_the_flag_in_step(harness: BotHarness) -> None:
    ids = await add_notices(harness.session_factory, [1003])
    harness.api.block(1003)
    await harness.feed_pending()
    assert (await link_of(harness.session_factory, 1003)).blocked
    assert (await rows_by_id(harness.session_factory))[ids[0]].state == "held"
    harness.api.unblock(1003)
    await harness.feed_pending()
    assert not (await link_of(harness.session_factory, 1003)).blocked
    assert (await rows_by_id(harness.session_factory))[ids[0]].state == "pending"
    harness.assert_no_errors()


@pytest.mark.usefixtures("seeded")
async def test_chat_not_found_counts_as_blocked(harness: BotHarness) -> None:
    async with harness.session_factory() as session:
        link = await Repositories(session).links.by_user("telegram", 1004)
        assert link is not None
        link.chat_id = 999  # a chat the Bot API does not know
        await session.commit()
    [row_id] = await add_notices(harness.session_factory, [999])
    await run_until_settled(notifier(harness), harness.session_factory)
    row = (await rows_by_id(harness.session_factory))[row_id]
    assert (row.state, row.last_error) == ("held", "400: Bad Request: chat not found")
    assert (await link_of(harness.session_factory, 999)).blocked


async def test_stop_hands_back_what_was_not_sent(harness: BotHarness) -> None:
    chats = [5000 + i for i in range(20)]
    for chat in chats:
        harness.api.add_user(chat)
    await add_notices(harness.session_factory, chats)
    settings = test_settings(harness.api, harness.settings.DATABASE_URL, NOTIFY_RATE=2)
    worker = notifier(harness, settings)
    task = asyncio.create_task(worker.run())
    for _ in range(int(SETTLE_LIMIT / 0.02)):
        if harness.api.calls_of("sendMessage"):
            break
        await asyncio.sleep(0.02)
    worker.stop()
    await task
    rows = (await rows_by_id(harness.session_factory)).values()
    sent = [row for row in rows if row.state == "sent"]
    assert 1 <= len(sent) < len(chats)
    assert len(sent) == len(deliveries(harness.api))
    assert all(row.lease_owner is None and row.lease_until is None for row in rows)


async def test_the_bot_process_runs_the_dispatcher_in_the_background(harness: BotHarness) -> None:
    ids = await add_notices(harness.session_factory, [1001, 1002])
    background = start_background(
        harness.bot, harness.session_factory, harness.settings, SystemClock()
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_LIMIT
    while await pending_count(harness.session_factory) > 0:
        assert loop.time() < deadline
        await asyncio.sleep(0.05)
    await background.stop()
    assert all(task.done() for task in background.tasks)
    assert sorted(row_id for row_id, _ in deliveries(harness.api)) == ids


def achieved_rate(calls: list[Call]) -> float:
    times = sorted(call.time for call in calls)
    return (len(times) - 1) / (times[-1] - times[0])


# The two load tests below run on one backend, PostgreSQL when it is set (the scaled layout): what
# they load is the dispatcher's pacing and retries, the same on both; the claims under load are
# the database's, and test_outbox.py tests them on both, test_replicas.py (PostgreSQL) and
# test_notifier_crash.py (SQLite) at volume. On both they were 100 s more of every CI run.
ONE_BACKEND = pytest.mark.parametrize("database_url", BACKENDS[-1:], indirect=True)


@pytest.mark.slow
@ONE_BACKEND
async def test_2000_notifications_to_500_chats_within_telegrams_limits(
    harness: BotHarness,
) -> None:
    """At the default rate against 30/s overall and 1/s per chat: everything delivered, in
    order, no 429, and the limiter keeps at least 90% of NOTIFY_RATE (25/s: about 80 s)."""
    chats = [10_000 + i for i in range(500)]
    for chat in chats:
        harness.api.add_user(chat)
    harness.api.set_rate_limits(overall_per_second=30, per_chat_per_second=1)
    ids = await add_notices(harness.session_factory, [chats[i % 500] for i in range(2000)])
    await run_until_settled(notifier(harness), harness.session_factory, limit=600)

    delivered = deliveries(harness.api)
    assert sorted(row_id for row_id, _ in delivered) == ids  # each exactly once
    assert harness.api.too_many_requests == 0
    rate = achieved_rate([call for _, call in delivered])
    print(f"achieved {rate:.2f} messages/s of NOTIFY_RATE {harness.settings.NOTIFY_RATE}")
    assert rate >= 0.9 * harness.settings.NOTIFY_RATE
    per_chat: dict[int, list[int]] = defaultdict(list)
    for row_id, call in delivered:
        per_chat[int(call.params["chat_id"])].append(row_id)
    assert all(order == sorted(order) for order in per_chat.values())
    rows = await rows_by_id(harness.session_factory)
    assert all(row.state == "sent" and row.message_id for row in rows.values())


@pytest.mark.slow
@ONE_BACKEND
@pytest.mark.usefixtures("seeded")
async def test_faults_and_a_blocked_chat(harness: BotHarness) -> None:
    """10% of sends fail with 5xx or time out, one chat answers 403: every deliverable push is
    delivered once (plus one copy per send that timed out after reaching Telegram), the blocked
    chat's rows are held and its link marked."""
    rng = random.Random(5)
    chats = [20_000 + i for i in range(100)]
    for chat in chats:
        harness.api.add_user(chat)
    harness.api.set_rate_limits(overall_per_second=30, per_chat_per_second=1)
    targets = [chats[i % 100] for i in range(300)]
    ids = await add_notices(harness.session_factory, targets)
    blocked_ids = await add_notices(harness.session_factory, [1003] * 3)
    harness.api.block(1003)
    harness.api.take_updates()
    faults = rng.sample(range(len(ids)), k=len(ids) // 10)
    for n, index in enumerate(faults):
        chat = targets[index]
        if n % 3 == 0:
            harness.api.timeout_next("sendMessage", seconds=1.0, chat_id=chat)
        else:
            harness.api.fail_next(
                "sendMessage", error_code=rng.choice([500, 502, 503]), chat_id=chat
            )
    # A slow answer within the timeout is not a failure and must not cause a second copy.
    harness.api.timeout_next("sendMessage", seconds=0.2, chat_id=chats[0])

    worker = notifier(harness, send_timeout=0.5)
    await run_until_settled(worker, harness.session_factory)

    delivered = Counter(row_id for row_id, _ in deliveries(harness.api))
    timed_out = Counter(row_id for row_id, call in deliveries(harness.api) if call.delay >= 1.0)
    failed_calls = [c for c in harness.api.calls_of("sendMessage") if c.status >= 500]
    print(
        f"{len(failed_calls)} 5xx, {sum(timed_out.values())} timeouts, "
        f"{harness.api.too_many_requests} 429; duplicates from timeouts: {sum(timed_out.values())}"
    )
    assert len(failed_calls) + sum(timed_out.values()) == len(faults)
    assert set(delivered) == set(ids)
    assert all(delivered[i] == 1 + timed_out[i] for i in ids)
    rows = await rows_by_id(harness.session_factory)
    assert all(rows[i].state == "sent" for i in ids)
    assert [rows[i].state for i in blocked_ids] == ["held"] * 3
    assert (await link_of(harness.session_factory, 1003)).blocked
    assert worker.stats.held == 3


def test_the_dispatcher_command_needs_a_bot_token(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.delenv("BOT_TOKEN", raising=False)
    monkeypatch.delenv("MAX_BOT_TOKEN", raising=False)
    assert main(["dispatcher"]) == EXIT_SETTINGS
    assert "не задан ни BOT_TOKEN (Telegram), ни MAX_BOT_TOKEN (MAX)" in capsys.readouterr().err
    assert "dispatcher" in parser().format_help()
