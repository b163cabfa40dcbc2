"""(7) Scale-out: the mixed workload of part 2 sent to two `python -m bot` replicas in webhook
mode and one `python -m bot dispatcher`, on one PostgreSQL and one Redis, against the same with
one replica, in the same run.

    python -m bench.replicas [--directors N] [--cycles N]

Needs PostgreSQL (TEST_DATABASE_URL or BENCH_DATABASE_URL); Redis when TEST_REDIS_URL or
BENCH_REDIS_URL is set (the replicas keep the conversations' state there; without it, in
PostgreSQL, as docs/DEPLOYMENT.md allows). Only this bot's keys (`fsm:<its id>:*`) are touched.

Each configuration runs on a fresh copy of the benchmark database: the replicas (NOTIFY_IN_BOT
false) take the updates, the dispatcher sends the pushes the decisions cause. The HTTP Bot API
double POSTs every update to a replica's webhook as Telegram does (the replicas in turn, as a
load balancer spreads them; a director's next update may reach the other replica, its state
following through Redis), over one kept-alive connection pool per replica, and waits for the
replica's answer (given once the update is handled) and for the screen the bot draws, before the
director's next update. Measured: updates a second, and the CPU every process used (the
replicas, the dispatcher, this benchmark's process with the double and the directors, the
PostgreSQL and Redis servers when they run on this machine), since on a machine with few cores
they all share them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench import data, machine, report
from bench.process import (
    CYCLE_DECISIONS,
    BotProcess,
    WatchedBotAPI,
    Workload,
    bot_process,
    director,
    free_port,
)
from bot.telegram.webhook import SECRET_HEADER, WEBHOOK_PATH
from tests.fakes.bot_api import JsonDict

GOAL = 1.8  # two replicas' updates/s over one replica's
DIRECTORS = 60
CYCLES = 2
BENCH_CYCLES = 1  # in python -m bench: 1,800 updates a configuration, within its 10 minutes
SECRET = "bench-replicas-webhook-secret-0123456789"
SERVERS = ("postgres", "redis-server")  # processes whose CPU is counted when on this machine


def redis_url() -> str | None:
    return os.environ.get("BENCH_REDIS_URL") or os.environ.get("TEST_REDIS_URL")


def cpu_ticks(pid: int) -> int:
    """User + system CPU ticks of a process so far (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def servers() -> dict[str, list[int]]:
    """The pids of the database and Redis servers' processes running on this machine."""
    found: dict[str, list[int]] = {name: [] for name in SERVERS}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm", encoding="utf-8") as comm:
                name = comm.read().strip()
        except OSError:
            continue
        if name in found:
            found[name].append(int(entry))
    return found


def machine_busy() -> tuple[int, int]:
    """(busy, all) CPU ticks of the whole machine so far, from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return sum(values[:8]) - idle, sum(values[:8])


@dataclass
class CpuWatch:
    """CPU seconds used during the measured part, per process (or group of processes)."""

    processes: dict[str, BotProcess]
    started: dict[str, int] = field(default_factory=dict)
    servers_started: dict[str, dict[int, int]] = field(default_factory=dict)
    machine_started: tuple[int, int] = (0, 0)
    own_started: float = 0.0
    used: dict[str, float] = field(default_factory=dict)
    machine_share: float = 0.0

    def start(self) -> None:
        self.started = {name: cpu_ticks(p.pid) for name, p in self.processes.items()}
        self.servers_started = {
            name: {pid: cpu_ticks(pid) for pid in pids} for name, pids in servers().items()
        }
        self.machine_started = machine_busy()
        self.own_started = time.process_time()

    def stop(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        self.used = {
            name: (cpu_ticks(p.pid) - self.started[name]) / tick
            for name, p in self.processes.items()
        }
        self.used["benchmark (double, directors)"] = time.process_time() - self.own_started
        for name, pids in servers().items():
            before = self.servers_started.get(name, {})
            ticks = sum(cpu_ticks(pid) - before.get(pid, 0) for pid in pids)
            if pids:
                self.used[f"{name} (every process)"] = ticks / tick
        busy, total = machine_busy()
        self.machine_share = (busy - self.machine_started[0]) / max(
            1, total - self.machine_started[1]
        )


class WebhookDouble(WatchedBotAPI):
    """The Bot API double delivering updates to webhooks as Telegram does: a POST with the
    secret, answered once the replica handled the update; a refusal (503) is delivered again."""

    def __init__(self) -> None:
        super().__init__()
        self.redelivered = 0
        self.webhooks_set: set[str] = set()  # the processes (`via`) that set their webhook

    async def _execute(
        self, method: str, params: JsonDict, *, token: str, via: str | None = None
    ) -> Any:
        call = await super()._execute(method, params, token=token, via=via)
        if method.lower() == "setwebhook" and call.status == 200 and via is not None:
            self.webhooks_set.add(via)
        return call

    async def post(self, http: aiohttp.ClientSession, url: str, update: JsonDict) -> None:
        while True:
            async with http.post(url, json=update, headers={SECRET_HEADER: SECRET}) as answer:
                await answer.read()
                if 200 <= answer.status < 300:
                    self._mark_delivered([update])
                    return
            self.redelivered += 1
            await asyncio.sleep(0.05)


@dataclass
class Scaled:
    replicas: int
    directors: int
    database: str
    workload: Workload
    wall: float
    cpu: CpuWatch
    redelivered: int
    errors: dict[str, int]

    @property
    def throughput(self) -> float:
        return self.workload.updates / self.wall

    @property
    def replicas_cores(self) -> float:
        """The cores the replicas used, together (CPU seconds / wall seconds)."""
        return sum(used for name, used in self.cpu.used.items() if "replica" in name) / self.wall


@asynccontextmanager
async def replica(
    api: WebhookDouble, url: str, name: str, redis: str | None
) -> AsyncIterator[BotProcess]:
    port = free_port()
    settings = {
        "TELEGRAM_API_URL": api.url_for(name),
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "WEBHOOK_SECRET": SECRET,
        "NOTIFY_IN_BOT": "false",  # the dispatcher sends
        **({"REDIS_URL": redis} if redis else {}),
    }
    async with bot_process(api, url, port=port, **settings) as process:
        yield process


async def wait_until_serving(api: WebhookDouble, replicas: dict[str, BotProcess]) -> None:
    """Every replica has set its webhook and answers /healthz."""
    deadline = time.monotonic() + 90
    async with aiohttp.ClientSession() as http:
        for name, process in replicas.items():
            while True:
                if process.process.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start serving:\n{process.log_tail()}")
                if name in api.webhooks_set:
                    try:
                        health = f"http://127.0.0.1:{process.port}/healthz"
                        async with http.get(health) as answer:
                            if answer.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                await asyncio.sleep(0.1)


async def scaled_run(
    replicas: int, size: data.Size, directors: int, cycles: int, redis: str | None
) -> Scaled:
    async with data.working_database("postgresql", size) as url:
        people = await data.directors(url, limit=directors, minimum_new=cycles * CYCLE_DECISIONS)
        async with WebhookDouble() as api, AsyncExitStack() as stack:
            if redis:
                await forget_states(redis, api.token)
            for user_id in await data.linked_users(url):
                api.add_user(user_id)
            names = [f"replica-{index + 1}" for index in range(replicas)]
            serving = {
                name: await stack.enter_async_context(replica(api, url, name, redis))
                for name in names
            }
            dispatcher = await stack.enter_async_context(
                bot_process(
                    api,
                    url,
                    "dispatcher",
                    TELEGRAM_API_URL=api.url_for("dispatcher"),
                    **({"REDIS_URL": redis} if redis else {}),
                )
            )
            await wait_until_serving(api, serving)
            connector = aiohttp.TCPConnector(limit=0)
            http = await stack.enter_async_context(aiohttp.ClientSession(connector=connector))
            hooks = [f"http://127.0.0.1:{p.port}{WEBHOOK_PATH}" for p in serving.values()]
            turn = 0

            async def deliver(update: JsonDict) -> None:
                nonlocal turn
                turn += 1
                await api.post(http, hooks[turn % len(hooks)], update)

            for person in people:  # the main menu every director starts from
                before = api.screens[person.telegram_user_id]
                await deliver(api.send_text(person.telegram_user_id, "/start"))
                await api.wait_for(
                    lambda p=person, b=before: api.screens[p.telegram_user_id] > b, 30
                )
            watch = CpuWatch({**serving, "dispatcher": dispatcher})
            workload = Workload()
            watch.start()
            started = time.perf_counter()
            await asyncio.gather(
                *(
                    director(api, person, cycles, workload, data.SEED + index, deliver)
                    for index, person in enumerate(people)
                )
            )
            wall = time.perf_counter() - started
            watch.stop()
            for name, process in {**serving, "dispatcher": dispatcher}.items():
                if process.process.returncode is not None:
                    raise RuntimeError(f"{name} stopped:\n{process.log_tail()}")
            errors = api.errors()
            if redis:
                await forget_states(redis, api.token)
    return Scaled(
        replicas, len(people), machine.database(url), workload, wall, watch, api.redelivered, errors
    )


async def forget_states(redis: str, token: str) -> None:
    """Delete this bot's conversation states (`fsm:<bot id>:*`) and nothing else."""
    from redis.asyncio import Redis

    client = Redis.from_url(redis)
    try:
        keys = [key async for key in client.scan_iter(f"fsm:{token.partition(':')[0]}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def goals(one: Scaled, two: Scaled) -> list[report.Goal]:
    ratio = two.throughput / one.throughput
    return [
        report.Goal(
            f"two webhook replicas and a dispatcher >= {GOAL}x one replica",
            f"(7) {report.backend(two.database)}, {os.cpu_count()} cores shared",
            f"{ratio:.2f}x ({one.throughput:.0f} -> {two.throughput:.0f}/s)",
            ratio >= GOAL,
        )
    ]


def print_result(one: Scaled, two: Scaled, redis: str | None) -> None:
    report.title(f"(7) Scale-out — {two.database}")
    state = "Redis" if redis else "PostgreSQL (no Redis configured)"
    print(
        f"webhook replicas (python -m bot, NOTIFY_IN_BOT=false) and one python -m bot "
        f"dispatcher on one PostgreSQL, conversation state in {state}; part 2's mix, "
        f"{two.workload.updates} updates by {two.directors} directors at once, each POSTed to "
        "the replicas in turn and waited for"
    )
    rows = []
    for run in (one, two):
        replicas = sum(seconds for name, seconds in run.cpu.used.items() if "replica" in name)
        rows.append(
            [
                f"{run.replicas} replica{'s' if run.replicas > 1 else ''} + dispatcher",
                f"{run.throughput:.0f}",
                f"{run.wall:.1f} s",
                report.ms(replicas / max(1, run.workload.updates)),
                f"{run.cpu.machine_share:.0%}",
            ]
        )
    header = ["configuration", "updates/s", "wall", "replicas' CPU/update", "machine busy"]
    report.table(header, rows)
    print(
        f"CPU used during each run, in cores (CPU seconds / wall seconds; {os.cpu_count()} cores):"
    )
    names = list(dict.fromkeys([*one.cpu.used, *two.cpu.used]))
    report.table(
        ["process", "1 replica", "2 replicas"],
        [
            [
                name,
                *(
                    f"{run.cpu.used[name] / run.wall:.2f}" if name in run.cpu.used else "-"
                    for run in (one, two)
                ),
            ]
            for name in names
        ],
    )
    ratio = two.throughput / one.throughput
    print(
        f"two replicas / one: {ratio:.2f}x (goal >= {GOAL}x: {report.verdict(ratio >= GOAL)}) "
        f"on {os.cpu_count()} cores shared by every process above (and whatever else runs)"
    )
    per_core = [run.throughput / max(run.replicas_cores, 1e-9) for run in (one, two)]
    print(
        f"updates a second per core the replicas got: {per_core[0]:.0f} with one, "
        f"{per_core[1]:.0f} with two ({per_core[1] / per_core[0]:.0%}): the ratio is the cores "
        f"the replicas got ({one.replicas_cores:.2f} -> {two.replicas_cores:.2f}) times that; "
        f"with a free core for each replica it would be about "
        f"{2 * per_core[1] / per_core[0]:.2f}x (an estimate, not the goal's figure)"
    )
    for run in (one, two):
        print(
            f"{run.replicas} replica(s): unanswered {run.workload.unanswered} of "
            f"{run.workload.updates}; deliveries refused and made again {run.redelivered}; "
            f"failed Bot API calls {run.errors or 'none'}",
            flush=True,
        )


async def run(size: data.Size, directors: int, cycles: int) -> tuple[Scaled, Scaled] | None:
    if data.postgres_base_url() is None:
        print("(7) Scale-out: not measured (needs PostgreSQL: TEST_DATABASE_URL)", flush=True)
        return None
    redis = redis_url()
    one = await scaled_run(1, size, directors, cycles, redis)
    two = await scaled_run(2, size, directors, cycles, redis)
    print_result(one, two, redis)
    return one, two


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.replicas", description=__doc__)
    parser.add_argument("--directors", type=int, default=DIRECTORS)
    parser.add_argument("--cycles", type=int, default=CYCLES, help="30 updates per cycle")
    parser.add_argument("--tiny", action="store_true", help="the smoke test's data size")
    args = parser.parse_args(argv)
    size = data.TINY if args.tiny else data.FULL
    report.lines(machine.describe())
    asyncio.run(run(size, args.directors, args.cycles))


if __name__ == "__main__":
    main()
