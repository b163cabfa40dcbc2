"""`python -m bench`: every benchmark in one run, with how it was run.

    python -m bench                   # every part; the delivery to Telegram (10,000 pushes to
                                      # 3,000 chats, ~7 min at NOTIFY_RATE) and to MAX (2,500
                                      # pushes to 750 dialogs, ~2 min at MAX_NOTIFY_RATE), each
                                      # in its own process meanwhile
    python -m bench --serial-delivery # the deliveries alone, after the rest (~9 minutes more)
    python -m bench --quick-delivery  # the delivery of 2,500 pushes to 750 chats to each
    python -m bench --tiny            # everything on a tiny database, in seconds (the smoke test)

The delivery is paced by the messengers' limits, not by the CPU: run beside the rest it uses a few
per cent of one core (each dispatcher and its Bot API double are a process of their own), which is
what keeps the whole run within 10 minutes; --serial-delivery measures it on a quiet machine.

PostgreSQL joins SQLite when TEST_DATABASE_URL (or BENCH_DATABASE_URL) is set: the benchmark
uses a database of its own beside it (bench.data), and so does (7), the scale-out of webhook
replicas (with Redis when TEST_REDIS_URL or BENCH_REDIS_URL is set). Each part also runs alone:
`python -m bench.updates`, `.throughput`, `.delivery`, `.ingest`, `.memory`, `.latency`,
`.replicas`, `.data`. The run ends with every goal, its figure and whether it was met.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence

from bench import (
    data,
    delivery,
    ingest,
    latency,
    machine,
    memory,
    replicas,
    report,
    throughput,
    updates,
)
from bench.process import Run, mixed_workload

RUN_GOAL = 600  # seconds


async def run_all(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    size = data.TINY if args.tiny else data.FULL
    backends = args.backend or data.backends()
    report.title("How this was run")
    report.lines(machine.describe())
    version, seed = data.GENERATOR_VERSION, data.SEED
    print(f"data: {size} (bench.data, generator version {version}, seed {seed})")
    for backend in backends:  # generated (or found in the cache) before anything is timed
        if backend == "sqlite":
            await data.sqlite_database(size)
        else:
            base = data.postgres_base_url()
            assert base is not None
            await data.postgres_template(size, base)

    tiny = args.tiny
    if tiny:
        deliveries = [(delivery.TELEGRAM, 20, 10), (delivery.MAX, 20, 10)]
    elif args.quick_delivery:
        quick = delivery.QUICK_MESSAGES, delivery.QUICK_CHATS
        deliveries = [(delivery.TELEGRAM, *quick), (delivery.MAX, *quick)]
    else:  # MAX at the quick size, which keeps the whole run within RUN_GOAL
        deliveries = [
            (delivery.TELEGRAM, delivery.FULL_MESSAGES, delivery.FULL_CHATS),
            (delivery.MAX, delivery.QUICK_MESSAGES, delivery.QUICK_CHATS),
        ]
    besides = (
        []
        if tiny or args.serial_delivery
        else [
            delivery.Beside(messages, chats, messenger) for messenger, messages, chats in deliveries
        ]
    )
    try:
        for beside in besides:
            await beside.start()
        goals = await run_parts(args, backends, size, besides, deliveries)
    finally:
        for beside in besides:
            await beside.stop()
    report.title("Done")
    took = time.perf_counter() - started
    print(
        f"all benchmarks ran in {took:.0f} s (goal: `make bench` from a fresh clone within "
        f"{RUN_GOAL // 60} minutes; the virtualenv's installation is not in this figure, the "
        f"generation of the benchmark's databases is: {report.verdict(took < RUN_GOAL)})",
        flush=True,
    )
    minutes = f"{int(took // 60)} min {int(took % 60)} s"
    goals.append(
        report.Goal(
            f"python -m bench < {RUN_GOAL // 60} min", "the whole run", minutes, took < RUN_GOAL
        )
    )
    report.goals_table(goals)


async def run_parts(
    args: argparse.Namespace,
    backends: Sequence[str],
    size: data.Size,
    besides: Sequence[delivery.Beside],
    deliveries: Sequence[tuple[delivery.Messenger, int, int]],
) -> list[report.Goal]:
    """Parts 1, 2 and 5, 6, 4, 7, then 3 (to each messenger): waited for if it runs beside,
    else run now. The goals of every figure, in that order."""
    tiny = args.tiny
    goals: list[report.Goal] = []
    clock = PartClock()
    for result in await updates.run(
        backends,
        size,
        rounds=5 if tiny else updates.ROUNDS,
        warmup=1 if tiny else updates.WARMUP,
        directors=2 if tiny else updates.DIRECTORS,
    ):
        goals += updates.goals(result)
    clock.lap("(1) cost per update")
    memories: list[report.Goal] = []
    for backend in backends:
        run = await throughput_run(backend, size, tiny)
        throughput.print_throughput(run)
        if backend == "sqlite":
            directors, cycles = (2, 1) if tiny else (throughput.DIRECTORS, throughput.CYCLES)
            throughput.print_floor(await throughput.floor_run(size, directors, cycles), run)
        memory.print_memory(run)
        goals += throughput.goals(run)
        memories += memory.goals(run)
    clock.lap("(2) throughput and (5) memory, with the floor bot")
    for result in await latency.run(backends, size, 5 if tiny else latency.DECISIONS):
        goals += latency.goals(result)
    clock.lap("(6) latency")
    goals += memories
    ingested = (
        await ingest.run(backends, size, put=10, batched=20)
        if tiny
        else await ingest.run(backends, size)
    )
    for result in ingested:
        goals += ingest.goals(result)
    clock.lap("(4) ingest")
    if "postgresql" in backends:
        directors, cycles = (2, 1) if tiny else (replicas.DIRECTORS, replicas.BENCH_CYCLES)
        scaled = await replicas.run(size, directors, cycles)
        if scaled is not None:
            goals += replicas.goals(*scaled)
    else:
        print("\n(7) Scale-out: not measured (needs PostgreSQL: TEST_DATABASE_URL)", flush=True)
    clock.lap("(7) scale-out")
    for beside in besides:
        goals += await beside.finish()
    if not besides:
        for messenger, messages, chats in deliveries:
            for sent in await delivery.run(["sqlite"], size, messages, chats, messenger):
                goals += delivery.goals(sent)
    clock.lap("(3) delivery, waited for" if besides else "(3) delivery")
    clock.print()
    return goals


class PartClock:
    """How long each part took (goal 6 is about the sum)."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.laps: list[tuple[str, float]] = []

    def lap(self, part: str) -> None:
        now = time.perf_counter()
        self.laps.append((part, now - self.last))
        self.last = now

    def print(self) -> None:
        report.title("Time by part")
        report.table(["part", "seconds"], [[part, f"{took:.0f}"] for part, took in self.laps])


async def throughput_run(backend: str, size: data.Size, tiny: bool) -> Run:
    """One run of the bot process under the mixed workload: (2) throughput and (5) memory."""
    return await mixed_workload(
        backend,
        size,
        directors=2 if tiny else throughput.DIRECTORS,
        cycles=1 if tiny else throughput.CYCLES,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--serial-delivery",
        action="store_true",
        help="run the deliveries alone after the other parts, not beside them",
    )
    parser.add_argument(
        "--quick-delivery",
        action="store_true",
        help=f"deliver {delivery.QUICK_MESSAGES:,} pushes to each messenger (default "
        f"{delivery.FULL_MESSAGES:,} to Telegram, {delivery.QUICK_MESSAGES:,} to MAX)",
    )
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), action="append")
    parser.add_argument("--tiny", action="store_true", help="a tiny database, a few updates")
    asyncio.run(run_all(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
