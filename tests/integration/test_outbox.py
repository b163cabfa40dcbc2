"""The outbox queue: lease-based claiming in order per chat, outcomes, holds, crash recovery."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.clock import ManualClock
from services.notifications import NotificationKind, enqueue_pushes
from services.outbox import (
    OutboxQueue,
    RetryPolicy,
    chat_blocked,
    chat_unblocked,
)
from storage.models import Binding, OutboxMessage
from storage.repositories import Repositories
from tests.factories import outbox_row

LEASE = timedelta(seconds=30)


async def add_rows(
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    chats: list[int],
    *,
    channel: str = "telegram",
    kind: str = "test",
) -> list[int]:
    """One pending row per entry of `chats`, in that order; returns their ids."""
    async with session_factory() as session:
        rows = [
            outbox_row(channel, kind, now=clock.now(), chat_id=chat, application_number=chat)
            for chat in chats
        ]
        session.add_all(rows)
        await session.commit()
        return [row.id for row in rows]


async def states(session_factory: async_sessionmaker[AsyncSession]) -> dict[int, str]:
    async with session_factory() as session:
        result = await session.execute(select(OutboxMessage.id, OutboxMessage.state))
        return {row_id: state for row_id, state in result.tuples()}


async def get_row(session_factory: async_sessionmaker[AsyncSession], row_id: int) -> OutboxMessage:
    async with session_factory() as session:
        row = await session.get(OutboxMessage, row_id)
        assert row is not None
        return row


def queue(
    session_factory: async_sessionmaker[AsyncSession], owner: str, **kwargs: object
) -> OutboxQueue:
    return OutboxQueue(session_factory, "telegram", LEASE, owner, **kwargs)  # type: ignore[arg-type]


async def test_claim_takes_the_oldest_row_of_each_chat_in_order(
    session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    ids = await add_rows(session_factory, clock, [1, 2, 1, 3, 2, 1])
    first = queue(session_factory, "a")
    claimed = await first.claim(10, clock.now())
    assert [row.id for row in claimed] == [ids[0], ids[1], ids[3]]
    assert all(row.lease_owner == "a" for row in claimed)
    assert all(row.lease_until == clock.now() + LEASE for row in claimed)
    # Another worker gets nothing: every chat has an older row in flight.
    assert await queue(session_factory, "b").claim(10, clock.now()) == []

    assert await first.mark_sent(claimed[0], 501, clock.now())
    claimed_b = await queue(session_factory, "b").claim(10, clock.now())
    assert [row.id for row in claimed_b] == [ids[2]]  # chat 1's next row, and only it


async def test_claim_respects_limit_and_availability(
    session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    ids = await add_rows(session_factory, clock, [1, 2, 3, 4])
    async with session_factory() as session:
        row = await session.get(OutboxMessage, ids[0])
        assert row is not None
        row.available_at = clock.now() + timedelta(seconds=10)
        await session.commit()
    worker = queue(session_factory, "a")
    assert [row.id for row in await worker.claim(2, clock.now())] == [ids[1], ids[2]]
    assert await worker.next_available_at(clock.now()) == clock.now() + timedelta(seconds=10)
    clock.advance(seconds=10)
    assert [row.id for row in await worker.claim(5, clock.now())] == [ids[0], ids[3]]


async def test_sent_rows_keep_time_and_message_id_and_space_the_chat(
    session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    ids = await add_rows(session_factory, clock, [7, 7])
    worker = queue(session_factory, "a")
    [row] = await worker.claim(5, clock.now())
    assert await worker.mark_sent(row, 42, clock.now(), timedelta(seconds=1))
    sent = await get_row(session_factory, ids[0])
    assert (sent.state, sent.sent_at, sent.message_id) == ("sent", clock.now(), "42")
    assert (sent.lease_until, sent.lease_owner) == (None, None)
    # The chat's next row waits a second, whichever worker takes it.
    assert await worker.claim(5, clock.now()) == []
    clock.advance(seconds=1)
    assert [row.id for row in await worker.claim(5, clock.now())] == [ids[1]]


async def test_an_expired_lease_is_claimed_again_after_a_crash(
    session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    ids = await add_rows(session_factory, clock, [1, 2])
    crashed = queue(session_factory, "crashed")
    taken = await crashed.claim(5, clock.now())
    assert len(taken) == 2
    survivor = queue(session_factory, "survivor")
    clock.advance(seconds=29)
    assert await survivor.claim(5, clock.now()) == []
    clock.advance(seconds=1)
    again = await survivor.claim(5, clock.now())
    assert [row.id for row in again] == ids
    # The crashed worker, had it survived, can no longer record anything for these rows.
    assert not await crashed.mark_sent(taken[0], 1, clock.now())
    assert await survivor.mark_sent(again[0], 2, clock.now())


async def test_renewed_leases_do_not_expire(
    session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await add_rows(session_factory, clock, [1])
    worker = queue(session_factory, "a")
    [row] = await worker.claim(5, clock.now())
    clock.advance(seconds=20)
    assert await worker.renew([row.id], clock.now()) == 1
    clock.advance(seconds=20)
    assert await queue(session_factory, "b").claim(5, clock.now()) == []
    assert await queue(session_factory, "b").renew([row.id], clock.now()) == 0


async def test_retry_backs_off_exponentially_with_jitter_then_fails(
    session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    [row_id] = await add_rows(session_factory, clock, [1])
    worker = queue(session_factory, "a")
    policy = RetryPolicy(base=2.0, cap=10.0, max_attempts=4)
    rng = random.Random(1)
    waits = []
    for attempt in range(1, 4):
        [row] = await worker.claim(5, clock.now())
        assert await worker.retry_or_fail(row, "5xx: Bad Gateway", clock.now(), policy, rng)
        stored = await get_row(session_factory, row_id)
        assert (stored.state, stored.attempts, stored.last_error) == (
            "pending",
            attempt,
            "5xx: Bad Gateway",
        )
        wait = (stored.available_at - clock.now()).total_seconds()
        ceiling = min(10.0, 2.0 * 2 ** (attempt - 1))
        assert ceiling / 2 <= wait <= ceiling
        waits.append(wait)
        assert await worker.claim(5, clock.now()) == []  # not before its time
        clock.advance(seconds=wait)
    assert waits == sorted(waits)
    [row] = await worker.claim(5, clock.now())
    assert not await worker.retry_or_fail(row, "network: timeout", clock.now(), policy, rng)
    stored = await get_row(session_factory, row_id)
    assert stored.state == "failed"
    assert stored.attempts == 4
    assert stored.last_error == "network: timeout (attempt 4 of 4)"


async def test_a_retried_row_keeps_the_chats_later_rows_back(
    session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    ids = await add_rows(session_factory, clock, [1, 1, 2])
    worker = queue(session_factory, "a")
    claimed = await worker.claim(5, clock.now())
    await worker.retry_or_fail(claimed[0], "5xx", clock.now(), RetryPolicy(), random.Random(0))
    assert [row.id for row in await worker.claim(5, clock.now())] == []  # chat 2 still leased
    await worker.mark_sent(claimed[1], 1, clock.now())
    assert await worker.claim(5, clock.now()) == []  # chat 1 waits for its retried row
    clock.advance(hours=1)
    assert [row.id for row in await worker.claim(5, clock.now())] == [ids[0]]


async def test_failed_rows_let_the_chat_continue(
    session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    ids = await add_rows(session_factory, clock, [1, 1])
    worker = queue(session_factory, "a")
    [row] = await worker.claim(5, clock.now())
    assert await worker.fail(row, "400: Bad Request: can't parse entities", clock.now())
    stored = await get_row(session_factory, ids[0])
    assert (stored.state, stored.attempts) == ("failed", 1)
    assert [row.id for row in await worker.claim(5, clock.now())] == [ids[1]]


async def test_released_rows_are_claimable_without_spending_an_attempt(
    session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    [row_id] = await add_rows(session_factory, clock, [1])
    worker = queue(session_factory, "a")
    [row] = await worker.claim(5, clock.now())
    later = clock.now() + timedelta(seconds=3)
    assert await worker.release([row.id], later, "429: retry after 3") == 1
    assert await queue(session_factory, "b").claim(5, clock.now()) == []
    clock.advance(seconds=3)
    [again] = await queue(session_factory, "b").claim(5, clock.now())
    assert (again.id, again.attempts) == (row_id, 0)


@pytest.mark.usefixtures("seeded")
async def test_blocked_chat_rows_are_held_and_resume_in_order(
    session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    ids = await add_rows(session_factory, clock, [1003, 1003, 1004, 1003])
    worker = queue(session_factory, "a")
    claimed = await worker.claim(5, clock.now())
    assert [row.id for row in claimed] == [ids[0], ids[2]]
    assert await worker.hold(claimed[0], "403: Forbidden: bot was blocked by the user", clock.now())
    assert await states(session_factory) == {
        ids[0]: "held",
        ids[1]: "held",
        ids[2]: "pending",
        ids[3]: "held",
    }
    async with session_factory() as session:
        link = await Repositories(session).links.by_user("telegram", 1003)
        assert link is not None
        assert link.blocked
        # A push written while the chat is blocked waits too.
        await enqueue_pushes(
            Repositories(session),
            kind=NotificationKind.COMMENT,
            account_ids=[3],
            application_number=1,
            event_id=None,
            now=clock.now(),
        )
        await session.commit()
    assert list((await states(session_factory)).values()).count("held") == 4
    assert await worker.claim(5, clock.now()) == []

    async with session_factory() as session:
        assert await chat_unblocked(session, "telegram", 1003, clock.now()) == 4
        await session.commit()
        link = await session.scalar(select(Binding).where(Binding.chat_id == 1003))
        assert link is not None
        assert not link.blocked
    for expected in (ids[0], ids[1], ids[3]):
        [row] = await worker.claim(5, clock.now())
        assert row.id == expected
        await worker.mark_sent(row, 1, clock.now())


@pytest.mark.usefixtures("seeded")
async def test_my_chat_member_block_leaves_a_row_in_flight_to_its_worker(
    session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    ids = await add_rows(session_factory, clock, [1003, 1003])
    worker = queue(session_factory, "a")
    [row] = await worker.claim(5, clock.now())
    async with session_factory() as session:
        assert await chat_blocked(session, "telegram", 1003, clock.now()) == 1
        await session.commit()
    assert await states(session_factory) == {ids[0]: "pending", ids[1]: "held"}
    assert await worker.mark_sent(row, 9, clock.now())


async def test_channels_are_separate_and_the_order_key_is_a_parameter(
    session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    telegram = await add_rows(session_factory, clock, [1])
    webhook = await add_rows(session_factory, clock, [5, 5, 6], channel="webhook")
    assert [r.id for r in await queue(session_factory, "t").claim(9, clock.now())] == telegram
    hooks = OutboxQueue(session_factory, "webhook", LEASE, "w", "application_number")
    assert [row.id for row in await hooks.claim(9, clock.now())] == [webhook[0], webhook[2]]


async def test_concurrent_workers_never_claim_the_same_row(
    session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await add_rows(session_factory, clock, list(range(1, 201)))
    workers = [queue(session_factory, f"w{i}") for i in range(4)]
    batches = await asyncio.gather(*(w.claim(60, clock.now()) for w in workers))
    ids = [row.id for batch in batches for row in batch]
    assert len(ids) == len(set(ids))
    assert len(ids) == 200
    async with session_factory() as session:
        result = await session.execute(select(OutboxMessage.id, OutboxMessage.lease_owner))
        owners = dict(result.tuples().all())
    for worker, batch in zip(workers, batches, strict=True):
        assert all(owners[row.id] == worker.owner for row in batch)
