"""Everything at once on the embedded SQLite: the bot, a separate dispatcher, two imports, 300
writes through the integration API and 40 directors' decisions. No transaction waits for a
messenger, so nobody meets «database is locked»; nothing is lost and no push is sent twice.

The latency of the API writes under this load is printed (docs/DEPLOYMENT.md records it); it
is measured, not asserted.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from pathlib import Path

import pytest
from aiohttp import ClientSession
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.db import create_engine, create_session_factory
from storage.migrate import upgrade
from storage.models import Application, ApplicationEvent, OutboxMessage
from tests import factories
from tests.api_support import API_TOKEN, AUTH, application_body
from tests.factories import applicant_chat, director_chat, seed_schools
from tests.fakes.bot_api import FakeBotAPI
from tests.processes import BotProcess, free_port

pytestmark = pytest.mark.slow

SCHOOLS = 40  # a director and an applicant each, linked; one new application each
API_WRITES = 300
API_AT_ONCE = 10
IMPORT_APPLICATIONS = 1500  # per import file
RUN_LIMIT = 240.0  # seconds: a safety net against a hang, not a speed requirement


async def seed(url: str) -> None:
    """SCHOOLS schools (factories.seed_schools), and an organisation with an unbound applicant
    for the writes through the API."""
    engine = create_engine(url)
    await upgrade(engine)
    try:
        async with create_session_factory(engine)() as session:
            await seed_schools(session, SCHOOLS)
            session.add(factories.organization(999, "МАОУ «СОШ № 999» (для записей через API)"))
            await session.flush()
            session.add(factories.account(9999, "Педагог Без Привязки", 999, "listener"))
            await session.commit()
    finally:
        await engine.dispose()


def import_file(path: Path, first: int) -> Path:
    """An export: an organisation, its people and IMPORT_APPLICATIONS applications."""
    org = 3000 + first // 100_000
    lines = [{"type": "organization", "id": org, "name": f"МАОУ «СОШ № {org}»"}]
    people = [org * 10 + k for k in range(10)]
    lines += [
        {
            "type": "account",
            "id": person,
            "full_name": f"Педагог {person}",
            "organization_id": org,
            "roles": ["listener"],
        }
        for person in people
    ]
    lines += [
        {
            "type": "application",
            "number": first + n,
            "applicant_id": people[n % 10],
            "organization_id": org,
            "status": "new",
            "version": 1,
            "program": "Программа " + "оценки компетенций " * 10,
        }
        for n in range(IMPORT_APPLICATIONS)
    ]
    path.write_text("\n".join(json.dumps(line, ensure_ascii=False) for line in lines))
    return path


async def api_writes(base: str) -> list[float]:
    """PUT API_WRITES new applications, API_AT_ONCE at a time; the latency of each."""
    slots = asyncio.Semaphore(API_AT_ONCE)
    latencies: list[float] = []

    async def write(http: ClientSession, number: int) -> None:
        async with slots:
            started = time.perf_counter()
            async with http.put(
                f"{base}/api/v1/applications/{number}",
                json=application_body(9999, 999),
                headers=AUTH,
            ) as response:
                assert response.status == 201, await response.text()
            latencies.append(time.perf_counter() - started)

    async with ClientSession() as http:
        await asyncio.gather(*(write(http, 700_000 + n) for n in range(API_WRITES)))
    return latencies


async def directors_decide(api: FakeBotAPI, bot: BotProcess) -> None:
    """Each director approves from the push: «✅ Одобрить», then «Без комментария»."""

    def has(org: int, text: str) -> bool:
        return any(text in str(m.buttons()) for m in api.chat(director_chat(org)) if m.from_bot)

    await bot.wait_for(lambda: all(has(org, "✅ Одобрить") for org in range(1, SCHOOLS + 1)))
    for org in range(1, SCHOOLS + 1):
        api.press(director_chat(org), "✅ Одобрить")
    await bot.wait_for(lambda: all(has(org, "Без комментария") for org in range(1, SCHOOLS + 1)))
    for org in range(1, SCHOOLS + 1):
        api.press(director_chat(org), "Без комментария")


async def test_everything_at_once_on_sqlite_meets_no_lock(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    await seed(url)
    files = [import_file(tmp_path / f"export{k}.jsonl", 800_000 + k * 100_000) for k in (1, 2)]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with FakeBotAPI() as api:
        for org in range(1, SCHOOLS + 1):
            api.add_user(director_chat(org))
            api.add_user(applicant_chat(org))
        api.set_rate_limits()  # Telegram's 30/s and 1/s per chat
        common = {
            "DATABASE_URL": url,
            "BOT_TOKEN": api.token,
            "TELEGRAM_API_URL": api.url,
            "LOG_LEVEL": "INFO",
        }
        bot = await BotProcess.start(
            tmp_path / "bot",
            **common,
            WEB_HOST="127.0.0.1",
            WEB_PORT=str(port),
            API_TOKEN=API_TOKEN,
            NOTIFY_IN_BOT="false",
        )
        dispatcher = await BotProcess.start(tmp_path / "dispatcher", "dispatcher", **common)
        imports: list[BotProcess] = []
        try:
            await bot.wait_for(lambda: bool(api.calls_of("deleteWebhook")))  # polling
            imports = [
                await BotProcess.start(
                    tmp_path / f"import{k}", "import", str(path), DATABASE_URL=url
                )
                for k, path in enumerate(files)
            ]
            latencies, _ = await asyncio.wait_for(
                asyncio.gather(api_writes(base), directors_decide(api, bot)), RUN_LIMIT
            )
            for process in imports:
                await process.exited(RUN_LIMIT)
            engine = create_engine(url)
            try:
                await wait_until_sent(create_session_factory(engine), bot)
                found = await counts(create_session_factory(engine))
            finally:
                await engine.dispose()
        finally:
            codes = [await bot.terminate(), await dispatcher.terminate()]
            for process in imports:
                await process.kill()
        logs = {p.log.parent.name: p.stderr() for p in (bot, dispatcher, *imports)}
        sent = [call for call in api.calls_of("sendMessage") if call.ok]

    assert codes == [0, 0], logs
    assert [process.returncode for process in imports] == [0, 0], logs
    for name, log in logs.items():
        assert "database is locked" not in log, (name, log[-3000:])
        assert "Traceback" not in log, (name, log[-3000:])
    assert found["approved"] == SCHOOLS  # every decision applied ...
    assert found["approvals"] == SCHOOLS  # ... once
    assert found["api_and_imported"] == API_WRITES + 2 * IMPORT_APPLICATIONS  # nothing lost
    # One push per decision to its applicant, one new-application push per director: no twice.
    applicants = [applicant_chat(org) for org in range(1, SCHOOLS + 1)]
    to_applicants = [c.params["chat_id"] for c in sent if c.params["chat_id"] in applicants]
    assert sorted(to_applicants) == applicants
    print(latency_report(latencies))


async def wait_until_sent(
    session_factory: async_sessionmaker[AsyncSession], bot: BotProcess
) -> None:
    deadline = time.monotonic() + RUN_LIMIT
    while True:
        async with session_factory() as session:
            waiting = await session.scalar(
                select(func.count()).select_from(OutboxMessage).where(OutboxMessage.state != "sent")
            )
        if not waiting:
            return
        assert time.monotonic() < deadline, f"{waiting} pushes still unsent: {bot.stderr()[-2000:]}"
        await asyncio.sleep(0.5)


async def counts(session_factory: async_sessionmaker[AsyncSession]) -> dict[str, int]:
    async with session_factory() as session:
        approved = await session.scalar(
            select(func.count())
            .select_from(Application)
            .where(
                Application.number.between(5001, 5000 + SCHOOLS), Application.status == "approved"
            )
        )
        approvals = await session.scalar(
            select(func.count())
            .select_from(ApplicationEvent)
            .where(ApplicationEvent.action == "approve")
        )
        others = await session.scalar(
            select(func.count()).select_from(Application).where(Application.number >= 700_000)
        )
    return {
        "approved": int(approved or 0),
        "approvals": int(approvals or 0),
        "api_and_imported": int(others or 0),
    }


def latency_report(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p95 = ordered[int(len(ordered) * 0.95) - 1]
    median = statistics.median(ordered)
    return (
        f"API writes under load: {len(ordered)}, median {median * 1000:.0f} ms, "
        f"p95 {p95 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms"
    )
