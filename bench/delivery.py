"""(3) Delivery: N notifications to many chats, sent by the real dispatcher process
(`python -m bot dispatcher`) through an HTTP Bot API double enforcing the messenger's limits:

* Telegram (the default): the Bot API double with Telegram's 30 messages/s overall and 1/s per
  chat, NOTIFY_RATE as configured (default 25/s);
* MAX (`--messenger max`): the dispatcher with MAX only (MAX_BOT_TOKEN, MAX_API_URL), the MAX
  Bot API double with MAX's documented 2 messages/s per dialog (and 30/s overall, a partner's
  figure MAX does not document), MAX_NOTIFY_RATE as configured (default 20/s). The chosen
  people are bound in MAX too (a binding of their own, its dialog id apart from the user id, as
  MAX has them) and the rows go to their MAX dialogs (channel "max").

The notifications are outbox rows as a burst of decisions leaves them (pending, kind
`status_changed`, each naming a real application and history row), written in a shuffled order
so that one chat's pushes arrive in runs, as they do. Measured: messages/s achieved from the
first to the last send against the configured rate, 429 answers, wall time against the ideal
N / rate.

    python -m bench.delivery [--quick | --messages N --chats N] [--backend sqlite|postgresql]
                             [--messenger telegram|max]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from sqlalchemy import func, insert, select

from bench import data, machine, report
from bench.process import WatchedBotAPI, WatchedMaxAPI, bot_process
from bot.settings import Settings
from services.outbox import new_row
from storage.db import create_engine
from storage.models import Binding, OutboxMessage

FULL_MESSAGES, FULL_CHATS = 10_000, 3_000
QUICK_MESSAGES, QUICK_CHATS = 2_500, 750
GOAL = 0.95  # of the configured rate, with no 429
# A person's MAX user id and dialog id, from the account id: apart from each other and from
# the Telegram ids (bench.data.TELEGRAM_OFFSET), as MAX's are.
MAX_USER_OFFSET, MAX_CHAT_OFFSET = 40_000_000, 70_000_000_000


@dataclass(frozen=True)
class Messenger:
    """A messenger the dispatcher delivers to, with the limits its double enforces."""

    name: str  # the outbox channel and the binding's messenger
    label: str
    setting: str  # the dispatcher's rate setting
    overall_limit: int
    per_chat_limit: int

    @property
    def rate(self) -> float:
        default: float = Settings.model_fields[self.setting].default
        return default


TELEGRAM = Messenger("telegram", "Telegram", "NOTIFY_RATE", overall_limit=30, per_chat_limit=1)
# MAX documents 2 messages a second per dialog; 30/s overall is a partner's figure (unverified).
MAX = Messenger("max", "MAX", "MAX_NOTIFY_RATE", overall_limit=30, per_chat_limit=2)
MESSENGERS = {messenger.name: messenger for messenger in (TELEGRAM, MAX)}
NOTIFY_RATE = TELEGRAM.rate


@dataclass
class Delivery:
    messenger: Messenger
    database: str
    messages: int
    chats: int
    rate: float
    sent: int
    first: float
    last: float
    wall: float
    too_many_requests: int
    states: dict[str, int]
    errors: dict[str, int]

    @property
    def achieved(self) -> float:
        return (self.sent - 1) / (self.last - self.first) if self.last > self.first else 0.0


async def enqueue(
    url: str, messages: int, chats: int, seed: int, messenger: Messenger = TELEGRAM
) -> tuple[list[tuple[int, int]], int]:
    """Write `messages` pending pushes to `chats` chats of `messenger` (in MAX: binding the
    chosen people there first); returns the recipients (user id, chat id) and the highest
    outbox id before the pushes."""
    rng = random.Random(seed)
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            before = int(await connection.scalar(select(func.max(OutboxMessage.id))) or 0)
            rows = (
                await connection.execute(
                    select(
                        OutboxMessage.chat_id,
                        OutboxMessage.account_id,
                        OutboxMessage.application_number,
                        OutboxMessage.event_id,
                    )
                    .where(OutboxMessage.kind == "status_changed")
                    .order_by(OutboxMessage.id)
                )
            ).all()
            by_chat: dict[int, list[tuple[int, int, int]]] = {}
            for chat_id, account_id, number, event_id in rows:
                by_chat.setdefault(chat_id, []).append((account_id, number, event_id))
            chosen = rng.sample(sorted(by_chat), min(chats, len(by_chat)))
            now = datetime.now(UTC)
            recipients = {chat_id: (chat_id, chat_id) for chat_id in chosen}  # Telegram's
            if messenger is MAX:
                accounts = {chat_id: by_chat[chat_id][0][0] for chat_id in chosen}
                recipients = {
                    chat_id: (account + MAX_USER_OFFSET, account + MAX_CHAT_OFFSET)
                    for chat_id, account in accounts.items()
                }
                await connection.execute(
                    insert(Binding.__table__),  # type: ignore[arg-type]
                    [
                        {
                            "account_id": accounts[chat_id],
                            "messenger": MAX.name,
                            "user_id": user_id,
                            "chat_id": dialog_id,
                            "blocked": False,
                            "linked_at": now,
                        }
                        for chat_id, (user_id, dialog_id) in recipients.items()
                    ],
                )
            pushes = []
            for index in range(messages):
                chat_id = chosen[index % len(chosen)]
                events = by_chat[chat_id]
                account_id, number, event_id = events[index // len(chosen) % len(events)]
                pushes.append(
                    new_row(
                        messenger.name,
                        "status_changed",
                        now=now,
                        account_id=account_id,
                        chat_id=recipients[chat_id][1],
                        application_number=number,
                        event_id=event_id,
                    )
                )
            rng.shuffle(pushes)
            await connection.execute(insert(OutboxMessage.__table__), pushes)  # type: ignore[arg-type]
    finally:
        await engine.dispose()
    return [recipients[chat_id] for chat_id in chosen], before


async def outcome(url: str, after: int) -> dict[str, int]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(OutboxMessage.state, func.count())
                .where(OutboxMessage.id > after)
                .group_by(OutboxMessage.state)
            )
            return {state: int(count) for state, count in rows}
    finally:
        await engine.dispose()


async def measure(
    backend: str,
    size: data.Size,
    messages: int,
    chats: int,
    seed: int = data.SEED,
    messenger: Messenger = TELEGRAM,
) -> Delivery:
    async with data.working_database(backend, size) as url:
        recipients, before = await enqueue(url, messages, chats, seed, messenger)
        api: WatchedBotAPI | WatchedMaxAPI
        if messenger is MAX:
            api = WatchedMaxAPI()
            api.set_rate_limits(MAX.per_chat_limit, overall_per_second=MAX.overall_limit)
        else:
            api = WatchedBotAPI()
            api.set_rate_limits(TELEGRAM.overall_limit, TELEGRAM.per_chat_limit)
        async with api:
            for user_id, chat_id in recipients:
                if isinstance(api, WatchedMaxAPI):
                    api.add_user(user_id, chat_id=chat_id)
                else:
                    api.add_user(user_id)
            started = time.perf_counter()
            ideal = messages / messenger.rate
            async with bot_process(api, url, "dispatcher") as dispatcher:
                deadline = started + 60 + 2 * ideal
                while api.sent_messages < messages and time.perf_counter() < deadline:
                    if dispatcher.process.returncode is not None:
                        raise RuntimeError(f"the dispatcher stopped:\n{dispatcher.log_tail()}")
                    await asyncio.sleep(0.2)
                wall = time.perf_counter() - started
                for _ in range(100):  # the last rows are marked sent after their answers
                    if not (await outcome(url, before)).get("pending"):
                        break
                    await asyncio.sleep(0.1)
            if not api.send_times:
                raise RuntimeError(f"the dispatcher sent nothing:\n{dispatcher.log_tail()}")
            first, last = api.send_times[0], api.send_times[-1]
            sent, throttled, errors = api.sent_messages, api.too_many_requests, api.errors()
        states = await outcome(url, before)
    return Delivery(
        messenger=messenger,
        database=machine.database(url),
        messages=messages,
        chats=len(recipients),
        rate=messenger.rate,
        sent=sent,
        first=first,
        last=last,
        wall=wall,
        too_many_requests=throttled,
        states=states,
        errors=errors,
    )


def goals(result: Delivery) -> list[report.Goal]:
    fraction = result.achieved / result.rate
    return [
        report.Goal(
            f"delivery >= {GOAL:.0%} of {result.messenger.setting} with no 429",
            f"(3) {result.messenger.label}, {result.messages:,} pushes",
            f"{fraction:.1%}, {result.too_many_requests} 429s",
            fraction >= GOAL and result.too_many_requests == 0,
        )
    ]


# A line a delivery run in a process of its own (`Beside`) ends with: its goals, as JSON.
GOALS_LINE = "bench-goals: "


def print_delivery(result: Delivery) -> None:
    messenger = result.messenger
    report.title(f"(3) Delivery to {messenger.label} — {result.database}")
    print(
        f"python -m bot dispatcher ({messenger.setting}={result.rate:g}) sending "
        f"{result.messages:,} pushes to {result.chats:,} {messenger.label} chats through the "
        f"HTTP {messenger.label} Bot API double enforcing {messenger.overall_limit}/s overall "
        f"and {messenger.per_chat_limit}/s per chat"
    )
    fraction = result.achieved / result.rate
    met = fraction >= GOAL and result.too_many_requests == 0
    ideal = result.messages / result.rate
    print(
        f"sent {result.sent:,}; achieved {result.achieved:.2f} messages/s from the first send to "
        f"the last = {fraction:.1%} of {messenger.setting}; 429 answers: "
        f"{result.too_many_requests} (goal >= {GOAL:.0%} with no 429: {report.verdict(met)})"
    )
    print(
        f"wall time from the dispatcher's start to the last send {result.wall:.1f} s, ideal "
        f"N / rate = {ideal:.1f} s ({result.wall / ideal:.2f}x; the start includes Python's "
        f"imports and migrations); rows afterwards: {result.states}; failed Bot API calls: "
        f"{result.errors or 'none'}",
        flush=True,
    )


class Beside:
    """The delivery benchmark as a process of its own (`python -m bench.delivery`), run while
    the other parts run: `start()`, then `finish()` waits for it and prints what it printed;
    `stop()`, whatever happened meanwhile, leaves no process running."""

    def __init__(self, messages: int, chats: int, messenger: Messenger = TELEGRAM) -> None:
        self.messages, self.chats, self.messenger = messages, chats, messenger
        self.process: asyncio.subprocess.Process | None = None
        self.output = tempfile.TemporaryFile()  # noqa: SIM115  (closed by stop())

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.delivery",
            "--messages",
            str(self.messages),
            "--chats",
            str(self.chats),
            "--backend",
            "sqlite",
            "--messenger",
            self.messenger.name,
            "--no-machine",
            "--goals-line",
            cwd=data.ROOT,
            stdout=self.output,
            stderr=asyncio.subprocess.STDOUT,
        )

    async def finish(self) -> list[report.Goal]:
        """Wait for the run, print what it printed; its goals."""
        assert self.process is not None, "start() first"
        code = await self.process.wait()
        self.output.seek(0)
        text = self.output.read().decode("utf-8", errors="replace")
        lines = text.rstrip("\n").split("\n")
        found = [
            report.Goal(**goal)
            for line in lines
            if line.startswith(GOALS_LINE)
            for goal in json.loads(line.removeprefix(GOALS_LINE))
        ]
        print("\n".join(line for line in lines if not line.startswith(GOALS_LINE)), flush=True)
        print(
            "(run in its own process beside the other benchmarks; --serial-delivery runs it alone)",
            flush=True,
        )
        if code != 0:
            raise RuntimeError(f"python -m bench.delivery exited with {code}")
        return found

    async def stop(self) -> None:
        """Interrupt the benchmark if it still runs (it then stops its dispatcher), close up."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self.output.close()


async def run(
    backends: Sequence[str],
    size: data.Size,
    messages: int,
    chats: int,
    messenger: Messenger = TELEGRAM,
    goals_line: bool = False,
) -> list[Delivery]:
    results = []
    for backend in backends:
        result = await measure(backend, size, messages, chats, messenger=messenger)
        print_delivery(result)
        if goals_line:
            print(GOALS_LINE + json.dumps([asdict(goal) for goal in goals(result)]), flush=True)
        results.append(result)
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = data.command_line("bench.delivery", __doc__)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_MESSAGES:,} pushes")
    parser.add_argument("--messages", type=int)
    parser.add_argument("--chats", type=int)
    parser.add_argument(
        "--messenger",
        choices=sorted(MESSENGERS),
        default=TELEGRAM.name,
        help="the messenger the pushes go to (default telegram)",
    )
    parser.add_argument("--no-machine", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--goals-line", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    backends, size = data.chosen(args, ["sqlite"])
    messages = args.messages or (QUICK_MESSAGES if args.quick else FULL_MESSAGES)
    chats = args.chats or (QUICK_CHATS if args.quick else FULL_CHATS)
    if not args.no_machine:  # python -m bench prints it once for every part
        report.lines(machine.describe())
    messenger = MESSENGERS[args.messenger]
    asyncio.run(run(backends, size, messages, chats, messenger, args.goals_line))


if __name__ == "__main__":
    main()
