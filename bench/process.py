"""The bot as a real process (`python -m bot`) against the HTTP Bot API double, driven by many
directors at once: what (2) throughput and (5) memory measure.

Each simulated director acts as a person does: does one thing, waits until the bot has shown
the result (edited the screen or sent a message), then does the next. The mix is 70% reads
(the list, its next page, a search by surname, a card, its history and comments) and 30%
updates of decisions (approve with a comment, approve without one, cancel with a reason).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bench import data, presses
from bench.machine import database
from bot.conversation.intents import AppAction
from bot.settings import Settings
from storage.db import create_engine
from storage.models import ApplicationEvent
from tests.fakes.bot_api import FakeBotAPI, JsonDict
from tests.fakes.max_api import Call as MaxCall
from tests.fakes.max_api import FakeMaxAPI

ROOT = data.ROOT
SCREEN_METHODS = frozenset({"sendmessage", "editmessagetext"})
STEP_TIMEOUT = 30.0  # seconds a director waits for the bot's answer before giving up on it
START_TIMEOUT = 60.0
COMMENT = "Согласовано, ждём на обучении."
REASON = "Отменяю: совпадает с ГИА."


class WatchedBotAPI(FakeBotAPI):
    """The Bot API double, counting per chat the screens the bot drew (sendMessage and
    editMessageText, answered or not) so that a simulated person can wait for the answer.

    Calls are counted by method and status instead of kept (a long run would keep them all).
    """

    def __init__(self) -> None:
        super().__init__()
        self.screens: dict[int, int] = defaultdict(int)
        self.outcomes: Counter[tuple[str, int]] = Counter()
        self.polls = 0
        self.sent_messages = 0
        self.send_times: list[float] = []  # monotonic time of each message delivered
        self._changed = asyncio.Condition()

    async def _execute(
        self, method: str, params: JsonDict, *, token: str, via: str | None = None
    ) -> Any:
        name = method.lower()
        if name == "getupdates":
            self.polls += 1  # counted on arrival: a long poll answers only when updates come
        call = await super()._execute(method, params, token=token, via=via)
        self.calls.clear()
        self.outcomes[(call.method, call.status)] += 1
        if name == "sendmessage" and call.status == 200:
            self.sent_messages += 1
            self.send_times.append(call.time)
        if name in SCREEN_METHODS:
            chat_id = params.get("chat_id")
            if isinstance(chat_id, int):
                self.screens[chat_id] += 1
                async with self._changed:
                    self._changed.notify_all()
        return call

    async def wait_for(self, predicate: Callable[[], bool], seconds: float) -> bool:
        """Wait up to `seconds` until `predicate()` holds (checked whenever a screen is drawn)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds), self._changed:
                await self._changed.wait_for(predicate)
        return predicate()

    def errors(self) -> dict[str, int]:
        """Failed calls by method. A getUpdates 409 is left out: it is the long poll a stopping
        bot abandoned, ended by the poll that confirms what was handled
        (bot/telegram/polling.py)."""
        failed: Counter[str] = Counter()
        for (method, status), count in self.outcomes.items():
            if status != 200 and (method, status) != ("getUpdates", 409):
                failed[f"{method} {status}"] += count
        return dict(failed)


class WatchedMaxAPI(FakeMaxAPI):
    """The MAX Bot API double (MAX's 2 messages a second per dialog enforced), counting the
    messages delivered (`POST /messages` answered 200) and every answer by endpoint and status
    instead of keeping the calls (a long run would keep them all)."""

    def __init__(self) -> None:
        super().__init__()
        self.outcomes: Counter[tuple[str, int]] = Counter()
        self.sent_messages = 0
        self.send_times: list[float] = []  # monotonic time of each message delivered

    def _record(self, call: MaxCall) -> None:
        self.outcomes[(call.endpoint, call.status)] += 1
        if call.endpoint == "POST /messages" and call.status == 200:
            self.sent_messages += 1
            self.send_times.append(call.time)

    def errors(self) -> dict[str, int]:
        """Failed calls by endpoint and status."""
        failed: Counter[str] = Counter()
        for (endpoint, status), count in self.outcomes.items():
            if status != 200:
                failed[f"{endpoint} {status}"] += count
        return dict(failed)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class BotProcess:
    """`python -m bot` (or another subcommand) running in a folder of its own (so that no .env
    of the checkout leaks in), talking to the double."""

    process: asyncio.subprocess.Process
    log: Path
    port: int

    @property
    def pid(self) -> int:
        return self.process.pid

    def status(self) -> dict[str, int]:
        """VmRSS, VmHWM (peak RSS) and the like from /proc, in KiB; its threads."""
        values: dict[str, int] = {}
        with open(f"/proc/{self.pid}/status", encoding="ascii") as status:
            for line in status:
                name, _, rest = line.partition(":")
                if name.startswith("Vm") and rest.strip().endswith("kB"):
                    values[name] = int(rest.split()[0])
                elif name == "Threads":
                    values[name] = int(rest)
        return values

    def cpu_seconds(self) -> float:
        """User + system CPU time the process has used so far."""
        with open(f"/proc/{self.pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


@asynccontextmanager
async def bot_process(
    api: FakeBotAPI | FakeMaxAPI,
    database_url: str,
    *args: str,
    module: str = "bot",
    port: int | None = None,
    **settings: str,
) -> AsyncIterator[BotProcess]:
    """Run `python -m bot [args]` (or another module) against the double until the block ends
    (then SIGTERM): the Telegram one (BOT_TOKEN, TELEGRAM_API_URL) or the MAX one (MAX only:
    MAX_BOT_TOKEN, MAX_API_URL). Its web server listens on `port` (a free one if None)."""
    port = port or free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TEST_", "BENCH_")) and key not in SETTING_NAMES
    }
    env.update(
        PYTHONPATH=str(ROOT),
        DATABASE_URL=database_url,
        WEB_HOST="127.0.0.1",
        WEB_PORT=str(port),
        LOG_LEVEL=os.environ.get("BENCH_BOT_LOG_LEVEL", "WARNING"),
    )
    if isinstance(api, FakeMaxAPI):
        env.update(MAX_BOT_TOKEN=api.token, MAX_API_URL=api.url)
    else:
        env.update(BOT_TOKEN=api.token, TELEGRAM_API_URL=api.url)
    env.update(settings)
    with tempfile.TemporaryDirectory(prefix="dpo-bench-run-") as folder:
        log = Path(folder) / "bot.log"
        with log.open("wb") as output:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                module,
                *args,
                cwd=folder,
                env=env,
                stdout=output,
                stderr=asyncio.subprocess.STDOUT,
            )
        running = BotProcess(process, log, port)
        try:
            yield running
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), 20)
                except TimeoutError:
                    process.kill()
                    await process.wait()


# Every setting the bot reads: the benchmark sets what it needs and nothing else leaks in.
SETTING_NAMES = frozenset(Settings.model_fields)


async def wait_until_polling(api: WatchedBotAPI, bot: BotProcess) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while api.polls == 0:
        if bot.process.returncode is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the bot did not start polling:\n{bot.log_tail()}")
        await asyncio.sleep(0.05)


# --- the directors ---------------------------------------------------------------------------


@dataclass
class Step:
    kind: str  # "read" or "decision"
    text: str | None = None  # a message the person sends
    data: str | None = None  # or a button the person presses


def reads(number: int, surname: str) -> list[Step]:
    card = presses.card(number)
    return [
        Step("read", data=presses.APPLICATIONS),
        Step("read", data=presses.NEXT_PAGE),
        Step("read", text=surname),
        Step("read", data=card.pack()),
        Step("read", data=card.to(AppAction.HISTORY).pack()),
        Step("read", data=card.pack()),
        Step("read", data=card.to(AppAction.COMMENTS).pack()),
    ]


def approve(number: int, comment: bool) -> list[Step]:
    card = presses.card(number)
    last = (
        Step("decision", text=COMMENT)
        if comment
        else Step("decision", data=card.to(AppAction.APPROVE_NO_COMMENT).pack())
    )
    return [Step("decision", data=card.to(AppAction.APPROVE).pack()), last]


def cancel(number: int) -> list[Step]:
    card = presses.card(number)
    return [
        Step("decision", data=card.to(AppAction.CANCEL).pack()),
        Step("decision", data=card.to(AppAction.CANCEL_CONFIRMED).pack()),
        Step("decision", text=REASON),
    ]


def cycle(numbers: list[int], surnames: list[str]) -> list[Step]:
    """30 updates, 21 reads and 9 of decisions: four decisions on four new applications."""
    first, second, third, fourth = numbers
    return [
        *reads(first, surnames[0]),
        *approve(first, comment=True),
        *reads(second, surnames[1]),
        *approve(second, comment=False),
        *reads(third, surnames[2]),
        *cancel(third),
        *approve(fourth, comment=True),
    ]


CYCLE_UPDATES = 30
CYCLE_DECISIONS = 4


@dataclass
class Workload:
    updates: int = 0
    reads: int = 0
    decisions: int = 0
    unanswered: int = 0
    latencies: list[float] = field(default_factory=list)


# How an update the double queued reaches the bot: None for long polling (the bot fetches it),
# else a coroutine that POSTs it to a webhook (bench/replicas.py).
Deliver = Callable[[JsonDict], Awaitable[None]] | None


async def act(
    api: WatchedBotAPI, user_id: int, step: Step, workload: Workload, deliver: Deliver = None
) -> None:
    """One update by the person; returns when the bot has drawn its answer."""
    before = api.screens[user_id]
    started = time.perf_counter()
    if step.text is not None:
        update = api.send_text(user_id, step.text)
    else:
        assert step.data is not None
        message_id = api.last_bot_message(user_id).message_id
        update = api.press_data(user_id, step.data, message_id)
    if deliver is not None:
        await deliver(update)
    answered = await api.wait_for(lambda: api.screens[user_id] > before, STEP_TIMEOUT)
    workload.updates += 1
    if step.kind == "read":
        workload.reads += 1
    else:
        workload.decisions += 1
    if answered:
        workload.latencies.append(time.perf_counter() - started)
    else:
        workload.unanswered += 1


async def director(
    api: WatchedBotAPI,
    person: data.Director,
    cycles: int,
    workload: Workload,
    seed: int,
    deliver: Deliver = None,
) -> None:
    numbers = list(person.new_applications)
    surnames = [person.surnames[(seed + i) % len(person.surnames)] for i in range(3 * cycles)]
    for index in range(cycles):
        chosen = numbers[index * CYCLE_DECISIONS : (index + 1) * CYCLE_DECISIONS]
        if len(chosen) < CYCLE_DECISIONS:
            return
        for step in cycle(chosen, surnames[index * 3 : index * 3 + 3]):
            await act(api, person.telegram_user_id, step, workload, deliver)


@dataclass
class Run:
    """What one run of the bot process under the mixed workload measured."""

    database: str
    directors: int
    workload: Workload
    wall: float
    cpu: float
    memory_started: dict[str, int]
    memory_after: dict[str, int]
    decisions_written: int
    errors: dict[str, int]
    with_max: bool = True

    @property
    def throughput(self) -> float:
        return self.workload.updates / self.wall

    def latency(self, share: float) -> float:
        ordered = sorted(self.workload.latencies)
        return ordered[max(0, int(share * len(ordered)) - 1)] if ordered else float("nan")

    @property
    def median_latency(self) -> float:
        return statistics.median(self.workload.latencies) if self.workload.latencies else 0.0


async def mixed_workload(
    backend: str,
    size: data.Size,
    *,
    directors: int,
    cycles: int,
    seed: int = data.SEED,
    module: str = "bot",
    with_max: bool = True,
    profile: str | None = None,
) -> Run:
    """Start the bot (`python -m <module>`) on a fresh copy of the benchmark database, let
    `directors` directors each do `cycles` cycles of 30 updates in Telegram, and measure.
    With `with_max` the process serves MAX too (MAX_BOT_TOKEN, polling the MAX double, where
    nobody writes): both front ends loaded, as a deployment serving both runs. With `profile`
    (an absolute path) the process runs under cProfile, which writes its statistics there when
    the process ends."""
    async with data.working_database(backend, size) as url:
        people = await data.directors(url, limit=directors, minimum_new=cycles * CYCLE_DECISIONS)
        history_before = await history_rows(url)
        async with WatchedBotAPI() as api, WatchedMaxAPI() as max_api:
            for user_id in await data.linked_users(url):
                api.add_user(user_id)
            both = {"MAX_BOT_TOKEN": max_api.token, "MAX_API_URL": max_api.url} if with_max else {}
            args: tuple[str, ...] = ()
            if profile is not None:
                args = ("-o", profile, "-m", module)
                module = "cProfile"
            async with bot_process(api, url, *args, module=module, **both) as bot:
                await wait_until_polling(api, bot)
                for person in people:  # the main menu every director starts from
                    before = api.screens[person.telegram_user_id]
                    api.send_text(person.telegram_user_id, "/start")
                    await api.wait_for(
                        lambda p=person, b=before: api.screens[p.telegram_user_id] > b,
                        STEP_TIMEOUT,
                    )
                memory_started = bot.status()
                workload = Workload()
                cpu_before, started = bot.cpu_seconds(), time.perf_counter()
                await asyncio.gather(
                    *(
                        director(api, person, cycles, workload, seed + index)
                        for index, person in enumerate(people)
                    )
                )
                wall = time.perf_counter() - started
                cpu = bot.cpu_seconds() - cpu_before
                memory_after = bot.status()
                if bot.process.returncode is not None:
                    raise RuntimeError(f"the bot stopped:\n{bot.log_tail()}")
                if with_max and not max_api.outcomes:
                    raise RuntimeError(f"the bot did not poll MAX:\n{bot.log_tail()}")
            errors = {**api.errors(), **max_api.errors()}
        written = await history_rows(url) - history_before
    return Run(
        database=database(url),
        directors=len(people),
        workload=workload,
        wall=wall,
        cpu=cpu,
        memory_started=memory_started,
        memory_after=memory_after,
        decisions_written=written,
        errors=errors,
        with_max=with_max,
    )


async def history_rows(url: str) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            count = await connection.scalar(select(func.count()).select_from(ApplicationEvent))
    finally:
        await engine.dispose()
    return int(count or 0)
