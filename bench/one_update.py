"""What the benchmarks of one update on a fresh SQLite file share (bench.bulk, bench.export):
the file migrated and seeded, the real runner over it (bot/conversation/runner.py), one press
timed, and the command line `--count N --rounds N`."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from bot.conversation.effects import Executor
from bot.conversation.runner import Runner
from bot.conversation.turn import Incoming, Peer, Press
from bot.settings import Settings
from services.clock import SystemClock
from storage.db import create_engine, create_session_factory
from storage.migrate import upgrade

Result = TypeVar("Result")


@asynccontextmanager
async def migrated(url: str) -> AsyncIterator[AsyncSession]:
    """A session of the database at `url`, migrated first: for the seed to write with."""
    engine = create_engine(url)
    try:
        await upgrade(engine)
        async with create_session_factory(engine)() as session:
            yield session
    finally:
        await engine.dispose()


@asynccontextmanager
async def runner_on_fresh_sqlite(
    name: str, seed: Callable[[str], Awaitable[None]], **settings: str
) -> AsyncIterator[Runner]:
    """The runner over a SQLite file `name` in a temporary folder, seeded by `seed(url)`;
    `settings` beside the bot token and the database."""
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / name}"
        await seed(url)
        bot_settings = Settings(  # type: ignore[call-arg]
            _env_file=None, BOT_TOKEN="123456:bench", DATABASE_URL=url, **settings
        )
        engine = create_engine(url)
        try:
            runner = Runner(create_session_factory(engine), bot_settings, SystemClock())
            try:
                yield runner
            finally:
                await runner.close()
        finally:
            await engine.dispose()


async def timed_press(
    runner: Runner, chat: int, press: Press, update_id: int, executor: Executor
) -> float:
    """Seconds of the update: the press in the Telegram chat `chat` (of the user `chat`)."""
    started = time.perf_counter()
    await runner.run(Incoming(Peer("telegram", chat, chat), press, update_id), executor)
    return time.perf_counter() - started


def median_and_worst(seconds: Sequence[float]) -> str:
    """The rounds' times as «median ms / worst ms»."""
    return f"{statistics.median(seconds) * 1000:.0f} ms / {max(seconds) * 1000:.0f} ms"


def markdown_table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """The title, then a Markdown table (for docs/BENCHMARKS.md); an empty cell stays empty."""

    def line(cells: Sequence[str]) -> str:
        return "|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|"

    print(title)
    print(line(header))
    print("|" + "---|" * len(header))
    for row in rows:
        print(line(row))


def main(
    description: str | None,
    count: int,
    rounds: int,
    measure: Callable[[int, int], Coroutine[Any, Any, Result]],
    print_result: Callable[[int, Result], None],
) -> None:
    """`--count` (default `count`) and `--rounds` (default `rounds`) from the command line: the
    measurement of them printed."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--count", type=int, default=count)
    parser.add_argument("--rounds", type=int, default=rounds)
    args = parser.parse_args()
    print_result(args.count, asyncio.run(measure(args.count, args.rounds)))
