"""Export: «📤 Выгрузить» of a list of 10,000 applications as one .xlsx document, in one update.

A staff member presses «📤 Выгрузить» on «Все» across organisations, through the real runner
(bot/conversation/runner.py), on a fresh SQLite file: the query of every page, the workbook
built (XlsxWriter), the document handed to the executor (which here keeps it, sending nothing).

    python -m bench.export [--count 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bot.conversation.effects import Document, Effect
from bot.conversation.intents import ListAction, ListFilter, ListIntent
from bot.conversation.runner import Runner
from bot.conversation.turn import Incoming, Peer, Press
from bot.settings import Settings
from services.clock import SystemClock
from storage.db import create_engine, create_session_factory
from storage.migrate import upgrade
from tests import factories

STAFF = 7
ORGANISATIONS = 50


class Keep:
    """An executor that keeps the document instead of sending it."""

    def __init__(self) -> None:
        self.documents: list[Document] = []

    async def execute(self, effects: list[Effect]) -> None:
        self.documents += [effect for effect in effects if isinstance(effect, Document)]


async def seed(url: str, count: int) -> None:
    engine = create_engine(url)
    try:
        await upgrade(engine)
        async with create_session_factory(engine)() as session:
            session.add_all(factories.organization(10 + i) for i in range(ORGANISATIONS))
            await session.flush()
            session.add(
                factories.account(
                    STAFF,
                    "Иванова Ольга Николаевна",
                    None,
                    "staff",
                    active_role="staff",
                    consent=True,
                )
            )
            session.add_all(
                factories.account(1000 + i, f"Заявитель{i} Иван Иванович", 10 + i % 50, "listener")
                for i in range(count)
            )
            await session.flush()
            session.add(factories.binding(STAFF, STAFF + 1000))
            session.add_all(
                factories.application(50000 + i, 1000 + i, 10 + i % ORGANISATIONS, "approved")
                for i in range(count)
            )
            await session.commit()
    finally:
        await engine.dispose()


async def one_round(count: int) -> tuple[float, int, int]:
    """(seconds of the update, rows exported, bytes of the file)."""
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'export.sqlite3'}"
        await seed(url, count)
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None, BOT_TOKEN="123456:bench", DATABASE_URL=url
        )
        engine = create_engine(url)
        try:
            runner = Runner(create_session_factory(engine), settings, SystemClock())
            peer = Peer("telegram", STAFF + 1000, STAFF + 1000)
            press = Press(ListIntent(action=ListAction.EXPORT, status_filter=ListFilter.ALL).pack())
            keep = Keep()
            started = time.perf_counter()
            await runner.run(Incoming(peer, press, 1), keep)
            elapsed = time.perf_counter() - started
            await runner.close()
        finally:
            await engine.dispose()
    [document] = keep.documents
    rows = int(document.caption.split(":", 1)[1].split(".", 1)[0])
    return elapsed, rows, len(document.content)


async def measure(count: int, rounds: int) -> list[tuple[float, int, int]]:
    return [await one_round(count) for _ in range(rounds)]


def print_result(count: int, results: list[tuple[float, int, int]]) -> None:
    median = statistics.median(r[0] for r in results)
    worst = max(r[0] for r in results)
    _, rows, size = results[-1]
    print(f"(export) «📤 Выгрузить» of {count} applications in one update, SQLite")
    print("| figure | value |\n|---|---|")
    print(
        f"| export of {rows} rows, median / worst of {len(results)} | "
        f"{median * 1000:.0f} ms / {worst * 1000:.0f} ms |"
    )
    print(f"| .xlsx size | {size / 1024:.0f} KiB |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print_result(args.count, asyncio.run(measure(args.count, args.rounds)))


if __name__ == "__main__":
    main()
