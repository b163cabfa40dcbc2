"""Bulk approval: a director approves 100 «Не обработана» applications in one update.

One press of «✅ Одобрить без комментария» after «✅ Одобрить все (100)», through the real
runner (bot/conversation/runner.py: the lock, one transaction, exactly once), on a fresh
SQLite file: each application through the same race-safe decision, its history row, the push
to its applicant and the decisions-webhook row written to the outbox (queued, not sent: the
dispatcher is not running). Goal of issue 15: ≤ 2 s.

    python -m bench.bulk [--count 100] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from bot.conversation.effects import Effect
from bot.conversation.intents import BulkAction, BulkIntent
from bot.conversation.runner import Runner
from bot.conversation.turn import Incoming, Peer, Press
from bot.settings import Settings
from services.clock import SystemClock
from storage.db import create_engine, create_session_factory
from storage.migrate import upgrade
from storage.models import ApplicationEvent, OutboxMessage
from tests import factories

GOAL_SECONDS = 2.0
DIRECTOR = 1
SCHOOL = 10


class Quiet:
    """An executor that shows nothing: only the update's own work is timed."""

    async def execute(self, effects: list[Effect]) -> None:
        return None


async def seed(url: str, count: int) -> None:
    engine = create_engine(url)
    try:
        await upgrade(engine)
        async with create_session_factory(engine)() as session:
            session.add(factories.organization(SCHOOL))
            await session.flush()
            bound = {"consent": True}
            session.add(
                factories.account(
                    DIRECTOR,
                    "Петров Пётр Петрович",
                    SCHOOL,
                    "director",
                    active_role="director",
                    **bound,
                )
            )
            for i in range(count):
                applicant = 100 + i
                session.add(
                    factories.account(
                        applicant,
                        f"Заявитель{i} Иван",
                        SCHOOL,
                        "listener",
                        active_role="listener",
                        **bound,
                    )
                )
            await session.flush()
            session.add(factories.binding(DIRECTOR, DIRECTOR + 1000))
            for i in range(count):
                session.add(factories.binding(100 + i, 100 + i + 1000))
                session.add(factories.application(40000 + i, 100 + i, SCHOOL, "new"))
            await session.commit()
    finally:
        await engine.dispose()


async def one_round(count: int) -> tuple[float, float, int, int]:
    """(seconds to confirm, seconds to approve, history rows, outbox rows)."""
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'bulk.sqlite3'}"
        await seed(url, count)
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            BOT_TOKEN="123456:bench",
            DATABASE_URL=url,
            DPO_WEBHOOK_URL="http://127.0.0.1:9/decisions",
            DPO_WEBHOOK_SECRET="b" * 32,
        )
        engine = create_engine(url)
        try:
            runner = Runner(create_session_factory(engine), settings, SystemClock())
            peer = Peer("telegram", DIRECTOR + 1000, DIRECTOR + 1000)
            times = []
            for update_id, action in enumerate((BulkAction.ALL, BulkAction.APPROVE), start=1):
                press = Press(BulkIntent(action).pack(), "1")
                started = time.perf_counter()
                await runner.run(Incoming(peer, press, update_id), Quiet())
                times.append(time.perf_counter() - started)
            async with create_session_factory(engine)() as session:
                events = await session.scalar(select(func.count()).select_from(ApplicationEvent))
                outbox = await session.scalar(select(func.count()).select_from(OutboxMessage))
            await runner.close()
        finally:
            await engine.dispose()
    return times[0], times[1], int(events or 0), int(outbox or 0)


async def measure(count: int, rounds: int) -> list[tuple[float, float, int, int]]:
    return [await one_round(count) for _ in range(rounds)]


def print_result(count: int, results: list[tuple[float, float, int, int]]) -> None:
    confirm = statistics.median(r[0] for r in results)
    approve = statistics.median(r[1] for r in results)
    worst = max(r[1] for r in results)
    events, outbox = results[-1][2], results[-1][3]
    met = "**met**" if approve <= GOAL_SECONDS else "missed"
    print(f"(bulk) Bulk approval of {count} applications in one update, SQLite")
    print("| figure | value | goal |\n|---|---|---|")
    print(f"| confirmation «Одобрить все ({count})», median | {confirm * 1000:.0f} ms | |")
    print(
        f"| approval of {count}, median / worst of {len(results)} | "
        f"{approve * 1000:.0f} ms / {worst * 1000:.0f} ms | <= {GOAL_SECONDS:.0f} s: {met} |"
    )
    print(f"| history rows / outbox rows written (pushes + webhook) | {events} / {outbox} | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print_result(args.count, asyncio.run(measure(args.count, args.rounds)))


if __name__ == "__main__":
    main()
