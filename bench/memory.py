"""(5) Memory: peak resident memory (VmHWM) of the bot process, `python -m bot` on the
benchmark database of 100,000 applications, after the mixed workload of bench.throughput.

    python -m bench.memory [--backend sqlite|postgresql]
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from bench import data, machine, report
from bench.process import Run, mixed_workload
from bench.throughput import CYCLES, DIRECTORS

GOAL_MIB = 150


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


def goals(run: Run) -> list[report.Goal]:
    peak = run.memory_after["VmHWM"]
    fronts = "both front ends" if run.with_max else "Telegram's front end"
    return [
        report.Goal(
            f"peak RSS <= {GOAL_MIB} MiB, {fronts}, after part 2",
            f"(5) {report.backend(run.database)}",
            mib(peak),
            peak <= GOAL_MIB * 1024,
        )
    ]


def print_memory(run: Run) -> None:
    report.title(f"(5) Memory — {run.database}")
    peak = run.memory_after["VmHWM"]
    print(
        f"python -m bot ({'Telegram and MAX' if run.with_max else 'Telegram'} front ends): "
        f"after start-up and every director's /start VmRSS "
        f"{mib(run.memory_started['VmRSS'])}; after the mixed workload "
        f"({run.workload.updates} updates by {run.directors} directors) VmRSS "
        f"{mib(run.memory_after['VmRSS'])}, peak (VmHWM) {mib(peak)} "
        f"(goal <= {GOAL_MIB} MiB: {report.verdict(peak <= GOAL_MIB * 1024)}); threads "
        f"{run.memory_started.get('Threads')} / {run.memory_after.get('Threads')}",
        flush=True,
    )


async def run(backends: Sequence[str], size: data.Size, directors: int, cycles: int) -> None:
    for backend in backends:
        print_memory(await mixed_workload(backend, size, directors=directors, cycles=cycles))


def main(argv: Sequence[str] | None = None) -> None:
    parser = data.command_line("bench.memory", __doc__)
    parser.add_argument("--directors", type=int, default=DIRECTORS)
    parser.add_argument("--cycles", type=int, default=CYCLES)
    args = parser.parse_args(argv)
    report.lines(machine.describe())
    asyncio.run(run(*data.chosen(args, ["sqlite"]), args.directors, args.cycles))


if __name__ == "__main__":
    main()
