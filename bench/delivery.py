"""(3) Delivery: N notifications to many chats through the HTTP Bot API double enforcing
Telegram's limits (30 messages/s overall, 1/s per chat), sent by the real dispatcher process
(`python -m bot dispatcher`, NOTIFY_RATE as configured, default 25/s).

The notifications are outbox rows as a burst of decisions leaves them (pending, kind
`status_changed`, each naming a real application and history row), written in a shuffled order
so that one chat's pushes arrive in runs, as they do. Measured: messages/s achieved from the
first to the last send against NOTIFY_RATE, 429 answers, wall time against the ideal N / rate.

    python -m bench.delivery [--quick | --messages N --chats N] [--backend sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, insert, select

from bench import data, machine, report
from bench.process import WatchedBotAPI, bot_process
from bot.settings import Settings
from storage.db import create_engine
from storage.models import OutboxMessage

FULL_MESSAGES, FULL_CHATS = 10_000, 3_000
QUICK_MESSAGES, QUICK_CHATS = 2_500, 750
GOAL = 0.95  # of NOTIFY_RATE, with no 429
OVERALL_LIMIT, PER_CHAT_LIMIT = 30, 1  # Telegram's, enforced by the double
NOTIFY_RATE = Settings.model_fields["NOTIFY_RATE"].default


@dataclass
class Delivery:
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


async def enqueue(url: str, messages: int, chats: int, seed: int) -> tuple[list[int], int]:
    """Write `messages` pending pushes to `chats` chats; returns the chats and the highest
    outbox id before them."""
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
            pushes = []
            for index in range(messages):
                chat_id = chosen[index % len(chosen)]
                events = by_chat[chat_id]
                account_id, number, event_id = events[index // len(chosen) % len(events)]
                pushes.append(
                    {
                        "channel": "telegram",
                        "kind": "status_changed",
                        "account_id": account_id,
                        "chat_id": chat_id,
                        "application_number": number,
                        "event_id": event_id,
                        "payload": {},
                        "state": "pending",
                        "attempts": 0,
                        "available_at": now,
                        "created_at": now,
                    }
                )
            rng.shuffle(pushes)
            await connection.execute(insert(OutboxMessage.__table__), pushes)  # type: ignore[arg-type]
    finally:
        await engine.dispose()
    return chosen, before


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
    backend: str, size: data.Size, messages: int, chats: int, seed: int = data.SEED
) -> Delivery:
    async with data.working_database(backend, size) as url:
        chosen, before = await enqueue(url, messages, chats, seed)
        async with WatchedBotAPI() as api:
            for chat_id in chosen:
                api.add_user(chat_id)
            api.set_rate_limits(OVERALL_LIMIT, PER_CHAT_LIMIT)
            started = time.perf_counter()
            ideal = messages / NOTIFY_RATE
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
            first, last = api.send_times[0], api.send_times[-1]
            sent, throttled, errors = api.sent_messages, api.too_many_requests, api.errors()
        states = await outcome(url, before)
    return Delivery(
        database=machine.database(url),
        messages=messages,
        chats=len(chosen),
        rate=NOTIFY_RATE,
        sent=sent,
        first=first,
        last=last,
        wall=wall,
        too_many_requests=throttled,
        states=states,
        errors=errors,
    )


def print_delivery(result: Delivery) -> None:
    report.title(f"(3) Delivery — {result.database}")
    print(
        f"python -m bot dispatcher (NOTIFY_RATE={result.rate:g}) sending {result.messages:,} "
        f"pushes to {result.chats:,} chats through the HTTP Bot API double enforcing "
        f"{OVERALL_LIMIT}/s overall and {PER_CHAT_LIMIT}/s per chat"
    )
    fraction = result.achieved / result.rate
    met = fraction >= GOAL and result.too_many_requests == 0
    ideal = result.messages / result.rate
    print(
        f"sent {result.sent:,}; achieved {result.achieved:.2f} messages/s from the first send to "
        f"the last = {fraction:.1%} of NOTIFY_RATE; 429 answers: {result.too_many_requests} "
        f"(goal >= {GOAL:.0%} with no 429: {report.verdict(met)})"
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

    def __init__(self, messages: int, chats: int) -> None:
        self.messages, self.chats = messages, chats
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
            "--no-machine",
            cwd=data.ROOT,
            stdout=self.output,
            stderr=asyncio.subprocess.STDOUT,
        )

    async def finish(self) -> None:
        assert self.process is not None, "start() first"
        code = await self.process.wait()
        self.output.seek(0)
        text = self.output.read().decode("utf-8", errors="replace")
        print(text.rstrip("\n"), flush=True)
        print(
            "(run in its own process beside the other benchmarks; --serial-delivery runs it alone)",
            flush=True,
        )
        if code != 0:
            raise RuntimeError(f"python -m bench.delivery exited with {code}")

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


async def run(backends: Sequence[str], size: data.Size, messages: int, chats: int) -> None:
    for backend in backends:
        print_delivery(await measure(backend, size, messages, chats))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.delivery", description=__doc__)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_MESSAGES:,} pushes")
    parser.add_argument("--messages", type=int)
    parser.add_argument("--chats", type=int)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), action="append")
    parser.add_argument("--tiny", action="store_true", help="the smoke test's data size")
    parser.add_argument("--no-machine", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    size = data.TINY if args.tiny else data.FULL
    messages = args.messages or (QUICK_MESSAGES if args.quick else FULL_MESSAGES)
    chats = args.chats or (QUICK_CHATS if args.quick else FULL_CHATS)
    if not args.no_machine:  # python -m bench prints it once for every part
        report.lines(machine.describe())
    asyncio.run(run(args.backend or ["sqlite"], size, messages, chats))


if __name__ == "__main__":
    main()
