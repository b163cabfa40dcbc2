"""Test pushes for the dispatcher tests: a kind whose text names its outbox row
(«Уведомление <id>»), so that every delivery can be traced to its row, written to the outbox
like the pushes of a change; and running a dispatcher until nothing is pending."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.conversation.pushes import RENDERERS, PushContext
from bot.screens.screen import Screen
from services.clock import SystemClock
from services.outbox import OutboxWorker
from storage.models import OutboxMessage
from tests.factories import outbox_row

NOTICE = "test_notice"
SETTLE_LIMIT = 60.0  # a safety net against a hang, not a speed requirement
_TEXT = re.compile(r"^Уведомление (\d+)$")


@contextmanager
def notices_rendered(kind: str = NOTICE) -> Iterator[None]:
    """While inside, the dispatchers render a row of `kind` as «Уведомление <row id>»."""

    async def notice(context: PushContext) -> Screen:
        return Screen(f"Уведомление {context.row.id}")

    RENDERERS[kind] = notice
    try:
        yield
    finally:
        del RENDERERS[kind]


def notice_row(text: object) -> int | None:
    """The row a notice's text names; None for any other text."""
    match = _TEXT.match(str(text))
    return int(match[1]) if match else None


async def add_notices(
    session_factory: async_sessionmaker[AsyncSession],
    chats: list[int],
    *,
    channel: str = "telegram",
    kind: str = NOTICE,
) -> list[int]:
    """One pending notice per entry of `chats`, in that order; returns their ids."""
    now = SystemClock().now()
    async with session_factory() as session:
        rows = [outbox_row(channel, kind, now=now, chat_id=chat) for chat in chats]
        session.add_all(rows)
        await session.commit()
        return [row.id for row in rows]


async def pending_count(session_factory: async_sessionmaker[AsyncSession]) -> int:
    async with session_factory() as session:
        count = await session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.state == "pending")
        )
    return int(count or 0)


async def run_until_settled(
    worker: OutboxWorker[Screen],
    session_factory: async_sessionmaker[AsyncSession],
    limit: float = SETTLE_LIMIT,
) -> None:
    """Run the dispatcher until no row is pending (sent, failed or held), then stop it."""
    task = asyncio.create_task(worker.run())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    try:
        while await pending_count(session_factory) > 0:
            assert loop.time() < deadline, "rows still pending"
            assert not task.done(), task
            await asyncio.sleep(0.1)
    finally:
        worker.stop()
        await task
