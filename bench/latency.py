"""(6) Latency of a decision's push: from the director's last tap («Без комментария» after
«✅ Одобрить») to the applicant's sendMessage arriving at the HTTP Bot API double, through the
real process, with an idle outbox.

One director at a time, one decision at a time, a pause between them: each push is the only
row waiting, so what is measured is how soon the dispatcher learns of it and sends it, not a
queue. Measured in `python -m bot` (the dispatcher in the bot process: a commit wakes it
directly) and, on PostgreSQL, also with the dispatcher as a process of its own
(`NOTIFY_IN_BOT=false` and `python -m bot dispatcher`: woken by LISTEN/NOTIFY).

    python -m bench.latency [--decisions N] [--backend sqlite|postgresql]
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from bench import data, machine, report
from bench.process import STEP_TIMEOUT, BotProcess, WatchedBotAPI, bot_process, wait_until_polling
from bot.conversation.intents import AppAction, AppIntent, StatusCode
from storage.db import create_engine
from storage.models import Account, Application, Binding
from tests.fakes.bot_api import JsonDict

GOAL_P50, GOAL_P95 = 0.300, 0.600  # seconds
DECISIONS = 60
PAUSE = 0.25  # seconds between two decisions: the outbox is idle when the next one comes
IN_BOT, SEPARATE = "in the bot process", "python -m bot dispatcher, a process of its own"


class TimedBotAPI(WatchedBotAPI):
    """The double, noting when each chat last received a message (monotonic seconds)."""

    def __init__(self) -> None:
        super().__init__()
        self.delivered: dict[int, float] = {}
        self._delivery = asyncio.Condition()

    async def _execute(
        self, method: str, params: JsonDict, *, token: str, via: str | None = None
    ) -> Any:
        call = await super()._execute(method, params, token=token, via=via)
        chat_id = params.get("chat_id")
        if method.lower() == "sendmessage" and call.status == 200 and isinstance(chat_id, int):
            self.delivered[chat_id] = call.time
            async with self._delivery:
                self._delivery.notify_all()
        return call

    async def delivery_to(self, chat_id: int, seconds: float) -> float | None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds), self._delivery:
                await self._delivery.wait_for(lambda: chat_id in self.delivered)
        return self.delivered.get(chat_id)


@dataclass
class Decision:
    director: int  # the director's Telegram user id
    number: int
    applicant_chat: int


@dataclass
class Latency:
    database: str
    mode: str
    samples: list[float] = field(default_factory=list)
    missing: int = 0

    def p(self, share: float) -> float:
        return report.percentile(self.samples, share) if self.samples else float("nan")


async def decisions(url: str, count: int) -> list[Decision]:
    """New applications of linked, unmuted applicants, spread over the busiest organisations'
    directors."""
    people = await data.directors(url, limit=20, minimum_new=4)
    engine = create_engine(url)
    chosen: list[Decision] = []
    try:
        async with engine.connect() as connection:
            for person in people:
                rows = await connection.execute(
                    select(Application.number, Binding.chat_id)
                    .join(Binding, Binding.account_id == Application.applicant_id)
                    .join(Account, Account.id == Application.applicant_id)
                    .where(
                        Application.organization_id == person.organization_id,
                        Application.status == "new",
                        Binding.messenger == "telegram",
                        Account.muted.is_(False),
                        Binding.blocked.is_(False),
                    )
                    .order_by(Application.number)
                )
                for number, chat_id in rows:
                    chosen.append(Decision(person.telegram_user_id, number, chat_id))
    finally:
        await engine.dispose()
    # One applicant once: a chat's second push would wait for its per-chat second.
    unique = {d.applicant_chat: d for d in chosen}
    by_director: dict[int, list[Decision]] = {}
    for decision in unique.values():
        by_director.setdefault(decision.director, []).append(decision)
    interleaved = [d for group in zip(*by_director.values(), strict=False) for d in group]
    rest = [d for d in unique.values() if d not in interleaved]
    return (interleaved + rest)[:count]


async def press(api: WatchedBotAPI, user_id: int, payload: str) -> None:
    """The director presses a button on their newest message; returns when the bot answered."""
    before = api.screens[user_id]
    message_id = api.last_bot_message(user_id).message_id
    api.press_data(user_id, payload, message_id)
    if not await api.wait_for(lambda: api.screens[user_id] > before, STEP_TIMEOUT):
        raise RuntimeError("the bot did not answer a press")


@contextlib.asynccontextmanager
async def processes(api: TimedBotAPI, url: str, mode: str) -> AsyncIterator[BotProcess]:
    if mode == IN_BOT:
        async with bot_process(api, url) as bot:
            yield bot
        return
    async with (
        bot_process(api, url, "dispatcher", NOTIFY_IN_BOT="false") as dispatcher,
        bot_process(api, url, NOTIFY_IN_BOT="false") as bot,
    ):
        yield bot
        if dispatcher.process.returncode is not None:
            raise RuntimeError(f"the dispatcher stopped:\n{dispatcher.log_tail()}")


async def measure(backend: str, size: data.Size, count: int, mode: str) -> Latency:
    async with data.working_database(backend, size) as url:
        chosen = await decisions(url, count)
        result = Latency(machine.database(url), mode)
        async with TimedBotAPI() as api:
            for user_id in await data.linked_users(url):
                api.add_user(user_id)
            async with processes(api, url, mode) as bot:
                await wait_until_polling(api, bot)
                for director in {d.director for d in chosen}:
                    before = api.screens[director]
                    api.send_text(director, "/start")
                    await api.wait_for(lambda d=director, b=before: api.screens[d] > b, 30)
                await asyncio.sleep(2.0)  # the dispatcher has started and found nothing to do
                for decision in chosen:
                    card = AppIntent(
                        action=AppAction.OPEN, number=decision.number, status=StatusCode.NEW
                    )
                    await press(api, decision.director, card.pack())
                    await press(api, decision.director, card.to(AppAction.APPROVE).pack())
                    message_id = api.last_bot_message(decision.director).message_id
                    tapped = time.monotonic()
                    api.press_data(
                        decision.director,
                        card.to(AppAction.APPROVE_NO_COMMENT).pack(),
                        message_id,
                    )
                    arrived = await api.delivery_to(decision.applicant_chat, STEP_TIMEOUT)
                    if arrived is None:
                        result.missing += 1
                    else:
                        result.samples.append(arrived - tapped)
                    await asyncio.sleep(PAUSE)
                if bot.process.returncode is not None:
                    raise RuntimeError(f"the bot stopped:\n{bot.log_tail()}")
    return result


def met(result: Latency) -> bool:
    return result.p(0.50) <= GOAL_P50 and result.p(0.95) <= GOAL_P95 and result.missing == 0


def goals(result: Latency) -> list[report.Goal]:
    return [
        report.Goal(
            f"a decision's push p50 <= {GOAL_P50 * 1000:.0f} ms, p95 <= {GOAL_P95 * 1000:.0f} ms",
            f"(6) {report.backend(result.database)}, dispatcher {result.mode}",
            f"{result.p(0.50) * 1000:.0f} / {result.p(0.95) * 1000:.0f} ms",
            met(result),
        )
    ]


def print_latency(result: Latency) -> None:
    report.title(f"(6) Latency of a decision's push — {result.database}, dispatcher {result.mode}")
    p50, p95 = result.p(0.50), result.p(0.95)
    print(
        f"{len(result.samples)} decisions one at a time, {PAUSE:g} s apart (idle outbox): from "
        f"the director's last tap («Без комментария») to the applicant's sendMessage at the "
        f"double: p50 {report.ms(p50)}, p95 {report.ms(p95)}, max "
        f"{report.ms(max(result.samples, default=float('nan')))} (goal p50 <= "
        f"{GOAL_P50 * 1000:.0f} ms and p95 <= {GOAL_P95 * 1000:.0f} ms: "
        f"{report.verdict(met(result))}); "
        f"pushes not arrived: {result.missing}",
        flush=True,
    )


def modes(backend: str) -> list[str]:
    return [IN_BOT, SEPARATE] if backend == "postgresql" else [IN_BOT]


async def run(backends: Sequence[str], size: data.Size, count: int) -> list[Latency]:
    results = []
    for backend in backends:
        for mode in modes(backend):
            result = await measure(backend, size, count, mode)
            print_latency(result)
            results.append(result)
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = data.command_line("bench.latency", __doc__)
    parser.add_argument("--decisions", type=int, default=DECISIONS)
    args = parser.parse_args(argv)
    report.lines(machine.describe())
    asyncio.run(run(*data.chosen(args), args.decisions))


if __name__ == "__main__":
    main()
