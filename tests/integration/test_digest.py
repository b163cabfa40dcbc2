"""The directors' daily digest, with a controllable clock, across restarts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.conversation.intents import MenuAction, MenuIntent
from bot.telegram.sender import TelegramSender
from services.clock import ManualClock
from services.digest import digest_loop, due_day, run_digest_if_due
from storage.db import create_engine, create_session_factory
from storage.models import Application, Binding, DigestRun, OutboxMessage
from tests import factories
from tests.harness import BotHarness, test_settings

ZONE = ZoneInfo("Asia/Yekaterinburg")  # UTC+5
NINE = time(9, 0)
PROGRAM_CLIPPED = "Диагностика личностно профессионального развития участников…"


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment of September 2026 in Yekaterinburg, as the aware UTC time the clock gives."""
    return datetime(2026, 9, day, hour, minute, tzinfo=ZONE).astimezone(UTC)


def test_the_digest_is_due_from_its_time_for_a_few_hours() -> None:
    assert due_day(local(1, 8, 59), ZONE, NINE) is None
    assert due_day(local(1, 9), ZONE, NINE) == datetime(2026, 9, 1).date()
    assert due_day(local(1, 11, 59), ZONE, NINE) == datetime(2026, 9, 1).date()
    assert due_day(local(1, 12), ZONE, NINE) is None
    # A late digest time runs past midnight into the day it belongs to.
    assert due_day(local(2, 1), ZONE, time(23, 0)) == datetime(2026, 9, 1).date()
    assert due_day(local(1, 9), ZoneInfo("Europe/Moscow"), NINE) is None  # 07:00 in Moscow


async def add_applications(
    session_factory: async_sessionmaker[AsyncSession], *specs: tuple[int, int, int, str]
) -> None:
    """(number, applicant, organisation, status) each."""
    async with session_factory() as session:
        session.add_all(
            factories.application(number, applicant, org, status)
            for number, applicant, org, status in specs
        )
        await session.commit()


async def digest_rows(session_factory: async_sessionmaker[AsyncSession]) -> list[OutboxMessage]:
    async with session_factory() as session:
        query = select(OutboxMessage).where(OutboxMessage.kind == "digest")
        return list(await session.scalars(query.order_by(OutboxMessage.id)))


async def runs(session_factory: async_sessionmaker[AsyncSession]) -> list[tuple[str, int]]:
    async with session_factory() as session:
        result = await session.scalars(select(DigestRun).order_by(DigestRun.day))
        return [(run.day.isoformat(), run.recipients) for run in result]


async def set_link(
    session_factory: async_sessionmaker[AsyncSession], account_id: int, **values: object
) -> None:
    """Set what the bot keeps of a bound person (blocked: of their Telegram binding)."""
    async with session_factory() as session:
        link = await session.scalar(select(Binding).where(Binding.account_id == account_id))
        assert link is not None
        for name, value in values.items():
            setattr(link if name == "blocked" else link.account, name, value)
        await session.commit()


pytestmark = pytest.mark.usefixtures("seeded")


async def test_directors_with_unprocessed_applications_get_one_digest_a_day(
    session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await add_applications(
        session_factory, (101, 3, 10, "new"), (102, 4, 10, "new"), (201, 6, 20, "approved")
    )
    clock.set(local(1, 8, 59))
    assert await run_digest_if_due(session_factory, clock, ZONE, NINE) is None
    clock.set(local(1, 9))
    # Two directors' digests, and staff's (an approved application waits for them).
    assert await run_digest_if_due(session_factory, clock, ZONE, NINE) == 3
    rows = await digest_rows(session_factory)
    assert [(row.account_id, row.chat_id, row.state) for row in rows] == [
        (1, 1001, "pending"),
        (2, 1002, "pending"),
    ]  # not the director of school 20: nothing waits there
    assert rows[0].payload == {"day": "2026-09-01"}
    clock.set(local(1, 9, 30))
    assert await run_digest_if_due(session_factory, clock, ZONE, NINE) is None
    assert len(await digest_rows(session_factory)) == 2
    assert await runs(session_factory) == [("2026-09-01", 3)]


async def test_no_digest_when_nothing_is_pending(
    session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await add_applications(session_factory, (101, 3, 10, "approved"))
    clock.set(local(1, 9))
    assert await run_digest_if_due(session_factory, clock, ZONE, NINE) == 1  # staff's only
    assert await digest_rows(session_factory) == []


async def test_directors_may_opt_out_or_mute(
    session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await add_applications(session_factory, (101, 3, 10, "new"), (201, 6, 20, "new"))
    await set_link(session_factory, 1, digest_enabled=False)
    await set_link(session_factory, 5, muted=True)
    clock.set(local(1, 10))
    assert await run_digest_if_due(session_factory, clock, ZONE, NINE) == 1
    assert [row.account_id for row in await digest_rows(session_factory)] == [2]


async def test_concurrent_dispatchers_write_the_day_once(
    database_url: str, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await add_applications(session_factory, (101, 3, 10, "new"))
    clock.set(local(1, 9))
    engines = [create_engine(database_url) for _ in range(3)]
    try:
        results = await asyncio.gather(
            *(
                run_digest_if_due(create_session_factory(engine), clock, ZONE, NINE)
                for engine in engines
            )
        )
    finally:
        for engine in engines:
            await engine.dispose()
    assert sorted(results, key=lambda r: r is None) == [2, None, None]
    assert len(await digest_rows(session_factory)) == 2


async def wait_for_runs(session_factory: async_sessionmaker[AsyncSession], count: int) -> None:
    for _ in range(500):
        if len(await runs(session_factory)) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {count} digest runs")


async def test_the_periodic_check_sends_once_a_day_across_restarts(
    database_url: str, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await add_applications(session_factory, (101, 3, 10, "new"))
    written: list[str] = []

    async def run_process(moment: datetime, expected_runs: int) -> None:
        """One life of a dispatcher process: its own engine, its own digest check."""
        clock.set(moment)
        engine = create_engine(database_url)
        stop = asyncio.Event()
        task = asyncio.create_task(
            digest_loop(
                create_session_factory(engine),
                clock,
                ZONE,
                NINE,
                stop,
                interval=0.01,
                on_written=lambda: written.append(clock.now().isoformat()),
            )
        )
        await wait_for_runs(session_factory, expected_runs)
        await asyncio.sleep(0.1)  # ten more checks: none may write again
        stop.set()
        await task
        await engine.dispose()

    await run_process(local(1, 8), 0)
    assert written == []
    await run_process(local(1, 9, 1), 1)
    await run_process(local(1, 9, 2), 1)  # restarted the same morning
    await run_process(local(1, 15), 1)
    await run_process(local(2, 9), 2)  # the next day
    assert written == [local(1, 9, 1).isoformat(), local(2, 9).isoformat()]
    assert await runs(session_factory) == [("2026-09-01", 2), ("2026-09-02", 2)]
    assert len(await digest_rows(session_factory)) == 4


async def test_the_digest_push_lists_the_oldest_applications(
    harness: BotHarness, clock: ManualClock
) -> None:
    await add_applications(
        harness.session_factory,
        *((100 + i, 3 + i % 2, 10, "new") for i in range(12)),
        (300, 3, 10, "approved"),
    )
    clock.set(local(1, 9))
    await run_digest_if_due(harness.session_factory, clock, ZONE, NINE)
    notifier = TelegramSender(harness.bot, harness.settings).worker(harness.session_factory, clock)
    assert await notifier.drain() == 3  # two directors' and staff's
    push = harness.api.last_bot_message(1001)
    lines = push.text.splitlines()
    assert lines[:3] == [
        "📋 Ежедневная сводка",
        "Заявок «Не обработана» в вашей организации: 12",
        "",
    ]
    assert lines[3] == f"№100 · Войсковая Ю. О. · {PROGRAM_CLIPPED}"
    assert lines[4].startswith("№101 · Байдуганова А. Ю. · ")
    assert [line.split(" ·")[0] for line in lines[3:13]] == [f"№{100 + i}" for i in range(10)]
    assert lines[13:] == [
        "…и ещё 2",
        "",
        "Одобрить или отменить их можно в разделе «Заявки».",
    ]
    assert push.buttons() == [["📥 Открыть заявки"]]
    assert (
        push.button("📥 Открыть заявки")["callback_data"]
        == MenuIntent(action=MenuAction.APPLICATIONS).pack()
    )


async def test_hidden_names_and_a_digest_overtaken_by_decisions(
    harness: BotHarness, clock: ManualClock
) -> None:
    await add_applications(harness.session_factory, (101, 3, 10, "new"))
    clock.set(local(1, 9))
    await run_digest_if_due(harness.session_factory, clock, ZONE, NINE)
    async with harness.session_factory() as session:
        # Director 2 processed everything before their digest went out.
        application = await session.get(Application, 101)
        assert application is not None
        application.status = "approved"
        await session.commit()
        await session.refresh(application)
    settings = test_settings(harness.api, harness.settings.DATABASE_URL, HIDE_NAMES_IN_PUSHES=True)
    notifier = TelegramSender(harness.bot, settings).worker(harness.session_factory, clock)
    await notifier.drain()
    assert harness.api.calls_of("sendMessage") == []
    rows = await digest_rows(harness.session_factory)
    assert {(row.state, row.last_error) for row in rows} == {
        ("failed", "nothing to report: no applications left new")
    }

    await add_applications(harness.session_factory, (102, 3, 10, "new"))
    clock.set(local(2, 9))
    await run_digest_if_due(harness.session_factory, clock, ZONE, NINE)
    await notifier.drain()
    lines = harness.api.last_bot_message(1001).text.splitlines()
    assert lines[3] == f"№102 · {PROGRAM_CLIPPED}"
    assert "Войсковая" not in harness.api.last_bot_message(1001).text
