"""Crash test: `python -m bot dispatcher` killed with SIGKILL mid-run and restarted, five times.

Every notification is delivered; the only duplicates are rows whose send reached Telegram just
before a kill, before the dispatcher could record it (delivery is at least once).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import re
import shutil
import signal
import time
from collections import defaultdict
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.notifications import notify_new_application
from storage.db import create_engine, create_session_factory
from storage.models import Account, AccountRole, OutboxMessage
from storage.repositories import Repositories
from tests import factories
from tests.fakes.bot_api import FakeBotAPI
from tests.processes import BotProcess

DIRECTORS = 100
PER_DIRECTOR = 10  # 1,000 notifications, ten per chat
KILLS = 5
CHAT_BASE = 30_000
NUMBER = re.compile(r"Новая заявка №(\d+)")
RUN_LIMIT = 180.0  # a safety net against a hang, not a speed requirement


async def seed(url: str) -> int:
    """100 schools, a linked director each, ten new applications each with their push."""
    engine = create_engine(url)
    try:
        async with create_session_factory(engine)() as session:
            session.add_all(factories.organization(org) for org in range(1, DIRECTORS + 1))
            await session.flush()
            for org in range(1, DIRECTORS + 1):
                session.add(
                    Account(
                        id=org,
                        full_name=f"Директор {org}",
                        organization_id=org,
                        updated_at=factories.T0,
                        roles=[AccountRole(role="director")],
                        active_role="director",
                        consent_at=factories.T0,
                        consent_version="1",
                    )
                )
            await session.flush()
            session.add_all(
                factories.binding(org, CHAT_BASE + org) for org in range(1, DIRECTORS + 1)
            )
            await session.flush()
            applications = [
                factories.application(n + 1, n % DIRECTORS + 1, n % DIRECTORS + 1)
                for n in range(DIRECTORS * PER_DIRECTOR)
            ]
            session.add_all(applications)
            await session.flush()
            repo = Repositories(session)
            for application in applications:
                await notify_new_application(repo, application, now=factories.T0)
            await session.commit()
            total = await session.scalar(select(func.count()).select_from(OutboxMessage))
    finally:
        await engine.dispose()
    return int(total or 0)


async def unsent(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        count = await connection.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.state != "sent")
        )
    return int(count or 0)


async def recorded_message_ids(url: str) -> dict[int, str | None]:
    engine = create_engine(url)
    try:
        async with create_session_factory(engine)() as session:
            result = await session.execute(
                select(OutboxMessage.application_number, OutboxMessage.message_id)
            )
            return {number: message_id for number, message_id in result.tuples() if number}
    finally:
        await engine.dispose()


async def start(api: FakeBotAPI, url: str, workdir: Path) -> BotProcess:
    """A dispatcher; every incarnation logs to the same file."""
    return await BotProcess.start(
        workdir,
        "dispatcher",
        BOT_TOKEN=api.token,
        DATABASE_URL=url,
        TELEGRAM_API_URL=api.url,
        NOTIFY_RATE="28",  # near the double's 30/s: few 429s, a short run
        NOTIFY_LEASE="3",
        LOG_LEVEL="INFO",
    )


def sends(api: FakeBotAPI) -> int:
    return len(api.calls_of("sendMessage"))


@pytest.mark.slow
async def test_sigkill_and_restart_lose_no_notification(
    tmp_path: Path, sqlite_template: Path
) -> None:
    path = tmp_path / "crash.sqlite3"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite+aiosqlite:///{path}"
    total = await seed(url)
    assert total == DIRECTORS * PER_DIRECTOR
    rng = random.Random(int(time.time()))
    seed_value = rng.randrange(1_000_000)
    rng.seed(seed_value)

    engine = create_engine(url)
    async with FakeBotAPI() as api:
        for org in range(1, DIRECTORS + 1):
            api.add_user(CHAT_BASE + org)
        api.set_rate_limits(overall_per_second=30, per_chat_per_second=1)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RUN_LIMIT
        restarts: list[float] = []  # when each incarnation after a kill began, the double's clock
        try:
            for kill in range(KILLS):
                if kill:
                    restarts.append(time.monotonic())
                process = await start(api, url, tmp_path)
                before = sends(api)
                while sends(api) == before:  # wait until this incarnation is sending
                    assert loop.time() < deadline, process.stderr()
                    assert process.returncode is None, process.stderr()
                    await asyncio.sleep(0.02)
                await asyncio.sleep(rng.uniform(0.2, 2.5))
                await process.kill()
                assert process.returncode == -signal.SIGKILL

            restarts.append(time.monotonic())
            process = await start(api, url, tmp_path)
            while await unsent(engine) > 0:
                assert loop.time() < deadline, process.stderr()
                assert process.returncode is None, process.stderr()
                await asyncio.sleep(0.2)
            assert await process.terminate() == 0, process.stderr()
        finally:
            await engine.dispose()
            await process.kill()

        deliveries: dict[int, list[float]] = defaultdict(list)
        message_ids: dict[int, list[int]] = defaultdict(list)
        for call in api.calls_of("sendMessage"):
            match = NUMBER.search(str(call.params.get("text", "")))
            if call.ok and match:
                deliveries[int(match[1])].append(call.time)
                message_ids[int(match[1])].append(call.result["message_id"])

    duplicates = {number: times for number, times in deliveries.items() if len(times) > 1}
    print(
        f"seed {seed_value}: {KILLS} kills, {sum(len(t) for t in deliveries.values())} sends for "
        f"{total} notifications, {sum(len(t) - 1 for t in duplicates.values())} duplicates "
        f"(rows {sorted(duplicates)}), {api.too_many_requests} answers 429"
    )
    assert sorted(deliveries) == list(range(1, total + 1))  # none lost
    for number, times in duplicates.items():
        # Each copy comes from another incarnation than the one before: the row was in flight
        # (sent, not yet recorded) when its dispatcher was killed, and the next one sent it again.
        for earlier, later in itertools.pairwise(times):
            assert any(earlier < start <= later for start in restarts), (number, times, restarts)
    recorded = await recorded_message_ids(url)
    assert all(recorded[number] in map(str, message_ids[number]) for number in deliveries)
