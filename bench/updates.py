"""(1) Cost per update: median and p99 time of a director's screens and of an approval with a
comment through the real Dispatcher (bot.telegram.bot.build_dispatcher), beside the floor: a
bare aiogram Dispatcher whose one handler only answers, fed the same kind of update through the same
in-process session (bench/telegram.py). Telegram's latency is left out; what remains is ours
(middlewares, filters, queries, rendering) plus aiogram's own work, which the floor measures.

    python -m bench.updates [--rounds N] [--backend sqlite|postgresql] [--profile FILE]

With --profile, cProfile runs around the real Dispatcher's measured updates (not the floor's)
and the statistics are written to FILE (per backend: FILE.sqlite, FILE.postgresql) and
summarised (bench/profiling.py); the times measured then include cProfile's overhead.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import logging
import pstats
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.types import CallbackQuery, Message, Update
from sqlalchemy import event, func, select

from bench import data, machine, presses, profiling, report
from bench.telegram import BOT_TOKEN, BOT_USERNAME, RecordingSession, Updates
from bot.conversation.intents import AppAction
from bot.settings import Settings
from bot.telegram.bot import build_bot, build_dispatcher
from storage.db import create_engine, create_session_factory
from storage.models import ApplicationEvent

CALLBACK, MESSAGE = "callback", "message"
OPEN_LIST = "open list"
NEXT_PAGE = "next page"
SEARCH = "search by surname"
OPEN_CARD = "open card"
ASK_COMMENT = "approve: ask for a comment"
APPROVE = "approve with a comment"
OPERATIONS = (OPEN_LIST, NEXT_PAGE, SEARCH, OPEN_CARD, ASK_COMMENT, APPROVE)
# Goals of issue 16 (benchmarks, not assertions): median / floor.
GOALS = {OPEN_LIST: 10.0, NEXT_PAGE: 10.0, SEARCH: 10.0, OPEN_CARD: 10.0, APPROVE: 15.0}
COMMENT = "Согласовано, ждём на обучении."
DIRECTORS = 100
ROUNDS = 300
WARMUP = 30


@dataclass
class Step:
    operation: str
    kind: str
    user_id: int
    payload: str


def round_steps(director: data.Director, number: int, surname: str) -> list[Step]:
    """One round of a director's work: the list, its next page, a search, a card, an approval."""
    user = director.telegram_user_id
    card = presses.card(number)
    return [
        Step(OPEN_LIST, CALLBACK, user, presses.APPLICATIONS),
        Step(NEXT_PAGE, CALLBACK, user, presses.NEXT_PAGE),
        Step(SEARCH, MESSAGE, user, surname),
        Step(OPEN_CARD, CALLBACK, user, card.pack()),
        Step(ASK_COMMENT, CALLBACK, user, card.to(AppAction.APPROVE).pack()),
        Step(APPROVE, MESSAGE, user, COMMENT),
    ]


def floor_dispatcher() -> Dispatcher:
    """aiogram's floor: a bare Dispatcher, one handler per update type that only answers."""

    async def on_callback(callback: CallbackQuery) -> None:
        await callback.answer()

    async def on_message(message: Message) -> None:
        await message.answer("ok")

    dp = Dispatcher()
    dp.callback_query.register(on_callback)
    dp.message.register(on_message)
    return dp


class ErrorCount(logging.Handler):
    """Counts what the error router logs: an update that failed is not a measurement."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


@dataclass
class Result:
    backend: str
    database: str
    rounds: int
    warmup: int
    directors: int
    times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    cpu: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    statements: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    floor: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    approved: int = 0
    errors: int = 0

    def floor_of(self, operation: str) -> list[float]:
        kind = MESSAGE if operation in (SEARCH, APPROVE) else CALLBACK
        return self.floor[kind]


async def timed(
    dp: Dispatcher, bot: Bot, update: Update, profile: cProfile.Profile | None = None
) -> tuple[float, float]:
    """Wall time and CPU time (every thread of the process) of one update."""
    started, cpu = time.perf_counter(), time.process_time()
    if profile is not None:
        profile.enable()
    try:
        await dp.feed_update(bot, update)
    finally:
        if profile is not None:
            profile.disable()
    return time.perf_counter() - started, time.process_time() - cpu


async def measure(
    backend: str,
    size: data.Size = data.FULL,
    *,
    rounds: int = ROUNDS,
    warmup: int = WARMUP,
    directors: int = DIRECTORS,
    seed: int = data.SEED,
    profile: cProfile.Profile | None = None,
) -> Result:
    rng = random.Random(seed)
    async with data.working_database(backend, size) as url:
        chosen = await data.directors(url, limit=directors, minimum_new=2)
        total = rounds + warmup
        per_director = -(-total // len(chosen))
        chosen = [d for d in chosen if len(d.new_applications) >= per_director] or chosen[:1]
        engine = create_engine(url)
        statements = 0

        def count(*_: Any) -> None:
            nonlocal statements
            statements += 1

        event.listen(engine.sync_engine, "before_cursor_execute", count)
        settings = Settings(_env_file=None, BOT_TOKEN=BOT_TOKEN, DATABASE_URL=url)  # type: ignore[call-arg]
        bot = build_bot(settings, RecordingSession())
        ours = build_dispatcher(settings, create_session_factory(engine))
        ours["bot_username"] = BOT_USERNAME
        floor = floor_dispatcher()
        updates = Updates(bot)
        errors = ErrorCount()
        logging.getLogger("handlers.errors").addHandler(errors)
        result = Result(backend, machine.database(url), rounds, warmup, len(chosen))
        try:
            for director in chosen:  # the main menu each director starts from
                await ours.feed_update(bot, updates.message(director.telegram_user_id, "/start"))
            queues = {d.account_id: list(d.new_applications) for d in chosen}
            gc.collect()
            for index in range(total):
                director = chosen[index % len(chosen)]
                number = queues[director.account_id].pop()  # the oldest new one
                steps = round_steps(director, number, rng.choice(director.surnames))
                for step in steps:
                    before = statements
                    measured = profile if index >= warmup else None
                    elapsed, cpu = await timed(ours, bot, build(updates, step), measured)
                    used = statements - before
                    floor_elapsed, _ = await timed(floor, bot, build(updates, step))
                    if index < warmup:
                        continue
                    result.times[step.operation].append(elapsed)
                    result.cpu[step.operation] += cpu
                    result.statements[step.operation] += used
                    result.floor[step.kind].append(floor_elapsed)
            async with engine.connect() as connection:
                result.approved = int(
                    await connection.scalar(
                        select(func.count())
                        .select_from(ApplicationEvent)
                        .where(
                            ApplicationEvent.action == "approve",
                            ApplicationEvent.comment == COMMENT,
                        )
                    )
                    or 0
                )
        finally:
            logging.getLogger("handlers.errors").removeHandler(errors)
            result.errors = errors.count
            await ours.storage.close()
            await engine.dispose()
    return result


def build(updates: Updates, step: Step) -> Update:
    if step.kind == CALLBACK:
        return updates.callback(step.user_id, step.payload)
    return updates.message(step.user_id, step.payload)


def goals(result: Result) -> list[report.Goal]:
    where = f"(1) {report.backend(result.database)}"
    found = []
    for operation, goal in GOALS.items():
        median = report.median(result.times[operation])
        ratio = median / report.median(result.floor_of(operation))
        found.append(
            report.Goal(
                f"{operation} <= {goal:.0f}x the floor",
                where,
                f"{ratio:.1f}x ({report.ms(median)})",
                ratio <= goal,
            )
        )
    return found


def print_result(result: Result) -> None:
    report.title(f"(1) Cost per update — {result.database}")
    print(
        f"{result.rounds} rounds of {len(OPERATIONS)} updates by {result.directors} directors "
        f"(after {result.warmup} warm-up rounds), one update at a time through the real "
        "Dispatcher and, after each, through the floor (a bare Dispatcher whose handler only "
        "answers); CPU: mean CPU time of the process (all threads) per update; SQL: statements "
        "per update"
    )
    rows: list[list[str]] = []
    floors = ((CALLBACK, "floor: callback.answer()"), (MESSAGE, "floor: message.answer()"))
    for kind, label in floors:
        samples = result.floor[kind]
        median, p99 = report.median(samples), report.percentile(samples, 0.99)
        rows.append([label, report.ms(median), report.ms(p99), "1.0x", "1.0x", "", "", ""])
    for operation in OPERATIONS:
        samples, floor = result.times[operation], result.floor_of(operation)
        median, p99 = report.median(samples), report.percentile(samples, 0.99)
        ratio = median / report.median(floor)
        goal = GOALS.get(operation)
        verdict = f"<= {goal:.0f}x {report.verdict(ratio <= goal)}" if goal else ""
        rows.append(
            [
                operation,
                report.ms(median),
                report.ms(p99),
                f"{ratio:.1f}x",
                f"{p99 / report.percentile(floor, 0.99):.1f}x",
                report.ms(result.cpu[operation] / len(samples)),
                f"{result.statements[operation] / len(samples):.1f}",
                verdict,
            ]
        )
    header = ["update", "median", "p99", "median/floor", "p99/floor", "CPU", "SQL", "goal"]
    report.table(header, rows)
    print(
        f"approvals written: {result.approved} (expected {result.rounds + result.warmup}); "
        f"errors logged: {result.errors}",
        flush=True,
    )


async def run(
    backends: Sequence[str],
    size: data.Size = data.FULL,
    rounds: int = ROUNDS,
    warmup: int = WARMUP,
    directors: int = DIRECTORS,
    profile: str | None = None,
) -> list[Result]:
    results = []
    for backend in backends:
        profiler = cProfile.Profile() if profile else None
        result = await measure(
            backend, size, rounds=rounds, warmup=warmup, directors=directors, profile=profiler
        )
        print_result(result)
        if profiler is not None:
            path = f"{profile}.{backend}"
            profiler.dump_stats(path)
            print(f"cProfile of the real Dispatcher's updates ({backend}) written to {path}")
            profiling.summary(pstats.Stats(profiler))
        results.append(result)
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = data.command_line("bench.updates", __doc__)
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="measured rounds per backend")
    parser.add_argument("--warmup", type=int, default=WARMUP)
    parser.add_argument("--profile", metavar="FILE", help="cProfile the real Dispatcher's updates")
    args = parser.parse_args(argv)
    report.lines(machine.describe())
    backends, size = data.chosen(args)
    asyncio.run(run(backends, size, args.rounds, args.warmup, profile=args.profile))


if __name__ == "__main__":
    main()
