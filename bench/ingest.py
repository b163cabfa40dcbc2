"""(4) Ingest: new applications a second through the integration API of the bot process
(`python -m bot`, its web server, API_TOKEN set): one by one through
PUT /api/v1/applications/{number} (a few clients at once, as the web module pushes changes),
and in batches through POST /api/v1/applications:batch.

Each application is new, «Не обработана», for an applicant of the benchmark database: it is
written with its «create» history row and a push to its organisation's directors, which the
bot's own dispatcher then sends to the Bot API double, as in production.

    python -m bench.ingest [--put N] [--batched N] [--backend sqlite|postgresql]
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp import ClientSession, ClientTimeout
from sqlalchemy import func, select

from bench import data, machine, report
from bench.process import BotProcess, WatchedBotAPI, bot_process, wait_until_polling
from bot.web.api.endpoints import BATCH_MAX
from storage.db import create_engine
from storage.models import Account, AccountRole, Application

PUT = 1_000
BATCHED = 10_000
CLIENTS = 4  # PUT requests in flight at once
GOAL = 2_000.0  # applications/s batched
NUMBER_BASE = 5_000_001  # numbers of the ingested applications: far from the generated ones


@dataclass
class Ingest:
    database: str
    put: int
    put_seconds: float
    batched: int
    batch_size: int
    batch_seconds: float
    statuses: dict[str, int]
    stored: int

    @property
    def put_rate(self) -> float:
        return self.put / self.put_seconds if self.put_seconds else 0.0

    @property
    def batch_rate(self) -> float:
        return self.batched / self.batch_seconds if self.batch_seconds else 0.0


async def applicants(url: str) -> list[tuple[int, int]]:
    """(account, organisation) of every applicant of the benchmark database."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(Account.id, Account.organization_id)
                .join(AccountRole, AccountRole.account_id == Account.id)
                .where(AccountRole.role == "listener", Account.organization_id.is_not(None))
                .order_by(Account.id)
            )
            return [(int(account), int(org)) for account, org in rows]
    finally:
        await engine.dispose()


def application(rng: random.Random, people: list[tuple[int, int]], number: int) -> dict[str, Any]:
    applicant, organization = rng.choice(people)
    start = date(2026, 10, 1) + timedelta(days=rng.randint(0, 120))
    return {
        "number": number,
        "applicant_id": applicant,
        "organization_id": organization,
        "program": rng.choice(data.PROGRAMS),
        "group": "Диагностика. Поток " + str(rng.randint(1, 12)),
        "description": "Диагностика профессиональных компетенций в форме тестирования.",
        "study_from": start.isoformat(),
        "study_to": (start + timedelta(days=rng.randint(2, 10))).isoformat(),
        "study_form": rng.choice(data.STUDY_FORMS),
        "listener_categories": rng.choice(data.CATEGORIES),
        "competencies": rng.choice(data.COMPETENCIES),
        "dpo_organization": rng.choice(data.DPO_ORGANIZATIONS),
        "status": "new",
        "version": 1,
        "created_at": datetime.now(UTC).isoformat(),
    }


async def stored_since(url: str, first: int) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            count = await connection.scalar(
                select(func.count()).select_from(Application).where(Application.number >= first)
            )
            return int(count or 0)
    finally:
        await engine.dispose()


async def put_all(
    http: ClientSession,
    base: str,
    items: list[dict[str, Any]],
    statuses: Counter[str],
    clients: int = CLIENTS,
) -> None:
    queue = list(reversed(items))

    async def client() -> None:
        while queue:
            item = queue.pop()
            body = {key: value for key, value in item.items() if key != "number"}
            async with http.put(f"{base}/api/v1/applications/{item['number']}", json=body) as r:
                await r.read()
                statuses[f"PUT {r.status}"] += 1

    await asyncio.gather(*(client() for _ in range(clients)))


async def post_batches(
    http: ClientSession, base: str, items: list[dict[str, Any]], size: int, statuses: Counter[str]
) -> None:
    for start in range(0, len(items), size):
        chunk = items[start : start + size]
        async with http.post(
            f"{base}/api/v1/applications:batch", json={"applications": chunk}
        ) as response:
            await response.read()
            statuses[f"POST batch {response.status}"] += 1


async def measure(
    backend: str,
    size: data.Size,
    *,
    put: int = PUT,
    batched: int = BATCHED,
    batch_size: int = BATCH_MAX,
    seed: int = data.SEED,
) -> Ingest:
    rng = random.Random(seed)
    token = secrets.token_urlsafe(24)
    async with data.working_database(backend, size) as url:
        people = await applicants(url)
        items = [application(rng, people, NUMBER_BASE + i) for i in range(put + batched)]
        statuses: Counter[str] = Counter()
        async with WatchedBotAPI() as api:
            for user_id in await data.linked_users(url):
                api.add_user(user_id)
            async with bot_process(api, url, API_TOKEN=token) as bot:
                await wait_until_polling(api, bot)
                base = f"http://127.0.0.1:{bot.port}"
                headers = {"Authorization": f"Bearer {token}"}
                async with ClientSession(headers=headers, timeout=ClientTimeout(total=300)) as http:
                    started = time.perf_counter()
                    await put_all(http, base, items[:put], statuses)
                    put_seconds = time.perf_counter() - started
                    started = time.perf_counter()
                    await post_batches(http, base, items[put:], batch_size, statuses)
                    batch_seconds = time.perf_counter() - started
                check_alive(bot)
        stored = await stored_since(url, NUMBER_BASE)
    return Ingest(
        database=machine.database(url),
        put=put,
        put_seconds=put_seconds,
        batched=batched,
        batch_size=batch_size,
        batch_seconds=batch_seconds,
        statuses=dict(statuses),
        stored=stored,
    )


def check_alive(bot: BotProcess) -> None:
    if bot.process.returncode is not None:
        raise RuntimeError(f"the bot stopped:\n{bot.log_tail()}")


def goals(result: Ingest) -> list[report.Goal]:
    return [
        report.Goal(
            f"batched ingest >= {GOAL:,.0f} applications/s",
            f"(4) {report.backend(result.database)}",
            f"{result.batch_rate:,.0f}/s",
            result.batch_rate >= GOAL,
        )
    ]


def print_ingest(result: Ingest) -> None:
    report.title(f"(4) Ingest — {result.database}")
    print(
        "python -m bot with API_TOKEN; new «Не обработана» applications, each written with its "
        "history row and a push to its organisation's directors"
    )
    print(
        f"PUT /api/v1/applications/{{number}}, {CLIENTS} clients at once: {result.put:,} in "
        f"{result.put_seconds:.1f} s -> {result.put_rate:.0f} applications/s"
    )
    print(
        f"POST /api/v1/applications:batch, {result.batch_size:,} a request: {result.batched:,} in "
        f"{result.batch_seconds:.1f} s -> {result.batch_rate:.0f} applications/s "
        f"(goal >= {GOAL:,.0f}: {report.verdict(result.batch_rate >= GOAL)})"
    )
    expected = result.put + result.batched
    print(
        f"answers: {result.statuses}; applications stored: {result.stored:,} (expected "
        f"{expected:,})",
        flush=True,
    )


async def run(
    backends: Sequence[str], size: data.Size, put: int = PUT, batched: int = BATCHED
) -> list[Ingest]:
    results = []
    for backend in backends:
        result = await measure(backend, size, put=put, batched=batched)
        print_ingest(result)
        results.append(result)
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = data.command_line("bench.ingest", __doc__)
    parser.add_argument("--put", type=int, default=PUT, help="applications sent one by one")
    parser.add_argument("--batched", type=int, default=BATCHED, help="applications in batches")
    args = parser.parse_args(argv)
    report.lines(machine.describe())
    asyncio.run(run(*data.chosen(args), args.put, args.batched))


if __name__ == "__main__":
    main()
