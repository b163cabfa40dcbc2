"""(2) Throughput: updates a second one bot process (`python -m bot`, long polling) sustains on
a mixed director workload (70% reads, 30% decisions) through the HTTP Bot API double, many
directors at once, each waiting for the bot's answer before the next update.

    python -m bench.throughput [--directors N] [--cycles N] [--backend sqlite|postgresql]
                               [--profile FILE]

The process serves both messengers (Telegram and MAX, the MAX double polled, idle). With
--profile the bot process runs under cProfile (statistics in FILE.<backend>, summarised by
bench/profiling.py; its throughput then includes cProfile's overhead).
"""

from __future__ import annotations

import asyncio
import pstats
from collections.abc import Sequence
from pathlib import Path

from bench import data, machine, profiling, report
from bench.process import CYCLE_DECISIONS, CYCLE_UPDATES, Run, mixed_workload

GOAL = 300.0  # updates/s
DIRECTORS = 60
CYCLES = 3


def print_throughput(run: Run) -> None:
    report.title(f"(2) Throughput — {run.database}")
    work = run.workload
    print(
        f"python -m bot (long polling{' Telegram and MAX' if run.with_max else ''}) against the "
        f"HTTP Bot API double; {run.directors} "
        f"directors at once, each doing cycles of {CYCLE_UPDATES} updates (21 reads: list, next "
        "page, search by surname, card, history, card, comments; 9 of decisions: approve with a "
        "comment, approve without, cancel with a reason, approve with a comment) and waiting "
        "for each answer"
    )
    print(
        f"updates: {work.updates} ({work.reads} reads, {work.decisions} of decisions) in "
        f"{run.wall:.1f} s -> {run.throughput:.0f} updates/s "
        f"(goal >= {GOAL:.0f}: {report.verdict(run.throughput >= GOAL)})"
    )
    expected = work.updates // CYCLE_UPDATES * CYCLE_DECISIONS
    print(
        f"decisions written to history: {run.decisions_written} (expected {expected}); "
        f"updates left unanswered: {work.unanswered}; failed Bot API calls: "
        f"{run.errors or 'none'}"
    )
    print(
        f"time from an update to the bot's answer, as a director sees it: median "
        f"{report.ms(run.median_latency)}, p99 {report.ms(run.latency(0.99))}"
    )
    print(
        f"bot process CPU: {run.cpu:.1f} s in {run.wall:.1f} s ({run.cpu / run.wall:.0%} of one "
        f"core), {report.ms(run.cpu / max(work.updates, 1))} of CPU per update",
        flush=True,
    )


def goals(run: Run) -> list[report.Goal]:
    return [
        report.Goal(
            f">= {GOAL:.0f} mixed updates/s in one process",
            f"(2) {report.backend(run.database)}",
            f"{run.throughput:.0f}/s",
            run.throughput >= GOAL,
        )
    ]


def print_floor(floor: Run, ours: Run) -> None:
    """The same workload against bench/floor_bot.py: aiogram and HTTP alone."""
    print(
        f"floor: a bare aiogram bot (bench/floor_bot.py: answers and edits, nothing else) under "
        f"the same workload: {floor.throughput:.0f} updates/s, "
        f"{report.ms(floor.cpu / max(floor.workload.updates, 1))} of CPU per update; "
        f"python -m bot sustains {ours.throughput / floor.throughput:.0%} of it",
        flush=True,
    )


async def floor_run(size: data.Size, directors: int, cycles: int) -> Run:
    return await mixed_workload(
        "sqlite",
        size,
        directors=directors,
        cycles=cycles,
        module="bench.floor_bot",
        with_max=False,
    )


async def run(
    backends: Sequence[str],
    size: data.Size,
    directors: int,
    cycles: int,
    profile: str | None = None,
) -> list[Run]:
    runs = []
    for backend in backends:
        path = f"{profile}.{backend}" if profile else None
        result = await mixed_workload(
            backend, size, directors=directors, cycles=cycles, profile=path
        )
        print_throughput(result)
        if path is not None:
            print(f"cProfile of the bot process ({backend}) written to {path}")
            profiling.summary(pstats.Stats(path))
        if backend == "sqlite" and path is None:
            print_floor(await floor_run(size, directors, cycles), result)
        runs.append(result)
    return runs


def main(argv: Sequence[str] | None = None) -> None:
    parser = data.command_line("bench.throughput", __doc__)
    parser.add_argument("--directors", type=int, default=DIRECTORS)
    parser.add_argument("--cycles", type=int, default=CYCLES, help="30 updates per cycle")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the bot process")
    args = parser.parse_args(argv)
    report.lines(machine.describe())
    backends, size = data.chosen(args)
    profile = str(Path(args.profile).resolve()) if args.profile else None
    asyncio.run(run(backends, size, args.directors, args.cycles, profile))


if __name__ == "__main__":
    main()
