"""/healthz (database, polling, background tasks) and /metrics (Prometheus)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.telegram.bot import track_updates
from bot.web.metrics import Metrics
from bot.web.server import Liveness
from services.clock import ManualClock
from services.outbox import OutboxWorker, Outcome, Sent
from storage.db import create_engine
from storage.models import OutboxMessage
from storage.repositories import Repositories
from tests.api_support import AUTH, api_settings, serve_api
from tests.factories import outbox_row, store
from tests.harness import BotHarness


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus exposition, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_healthz_reports_database_polling_and_tasks(
    database_url: str,
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> None:
    liveness = Liveness()
    stop = asyncio.Event()

    async def until_stopped() -> None:
        await stop.wait()

    task = asyncio.create_task(until_stopped())
    liveness.watch("decisions_webhook", task)
    state: dict[str, object] = {"mode": "polling", "polling": "running"}
    settings = api_settings(database_url)
    async with serve_api(
        engine, session_factory, clock, settings, liveness=liveness, state=state
    ) as client:
        response = await client.get("/healthz")
        assert response.status == 200
        assert await response.json() == {
            "status": "ok",
            "database": "ok",
            "mode": "polling",
            "polling": "running",
            "tasks": {"decisions_webhook": "running"},
            "delivery": {},  # no outbox worker in this process
        }
        stop.set()
        await task
        response = await client.get("/healthz")
        assert response.status == 503
        body = await response.json()
        assert (body["status"], body["tasks"]) == ("unavailable", {"decisions_webhook": "stopped"})


class StuckSender:
    """A channel whose receiver takes each request and never answers (`hangs`, until told to
    answer), or whose sending fails before any outcome (`raises`): either way no outcome is
    recorded, as when a 429's wait overflowed and every send waited for ever."""

    def __init__(self, how: str) -> None:
        self.how = how
        self.sending = asyncio.Event()
        self.answer = asyncio.Event()

    async def prepare(self, repo: Repositories, row: OutboxMessage) -> None:
        return None

    async def send(self, row: OutboxMessage, prepared: None) -> Outcome:
        self.sending.set()
        if self.how == "raises":
            raise OverflowError("date value out of range")
        await self.answer.wait()
        return Sent(message_id=1)


@pytest.mark.parametrize("how", ["hangs", "raises"])
async def test_a_stalled_deliverer_shows_in_healthz_and_metrics(
    database_url: str,
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    how: str,
) -> None:
    await store(
        session_factory, outbox_row("telegram", "status_changed", now=clock.now(), chat_id=1001)
    )
    sender = StuckSender(how)
    worker = OutboxWorker(session_factory, sender, channel="telegram", clock=clock, rate=10)
    metrics = Metrics()
    metrics.watch_worker(worker)
    stalled = ("dpo_bot_outbox_stalled_seconds", (("channel", "telegram"),))
    settings = api_settings(database_url)
    # Any time without an outcome counts here: the threshold is STALLED_AFTER in production.
    async with serve_api(
        engine, session_factory, clock, settings, metrics=metrics, stalled_after=0.0
    ) as client:
        body = await (await client.get("/healthz")).json()
        assert (body["status"], body["delivery"]) == ("ok", {"telegram": "ok"})
        task = asyncio.create_task(worker.run())
        try:
            async with asyncio.timeout(30):  # a safety net, not a speed requirement
                await sender.sending.wait()
            await asyncio.sleep(0)  # let a raising send end
            response = await client.get("/healthz")
            assert response.status == 503
            body = await response.json()
            assert (body["status"], body["delivery"]) == ("degraded", {"telegram": "stalled"})
            values = samples(await (await client.get("/metrics")).text())
            assert values[stalled] > 0
            if how == "hangs":  # the answer comes: progress again
                sender.answer.set()
                async with asyncio.timeout(30):
                    while worker.stats.sent == 0:
                        assert not task.done(), task
                        await asyncio.sleep(0.01)
                response = await client.get("/healthz")
                assert response.status == 200
                assert (await response.json())["delivery"] == {"telegram": "ok"}
                values = samples(await (await client.get("/metrics")).text())
                assert values[stalled] == 0
        finally:
            worker.stop()
            await task


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_healthz_follows_the_dispatcher(
    database_url: str,
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    harness: BotHarness,
    mode: str,
) -> None:
    state: dict[str, object] = {"mode": mode, mode: "starting"}
    track_updates(harness.dp, state)
    settings = api_settings(database_url)
    async with serve_api(engine, session_factory, clock, settings, state=state) as client:
        await harness.dp.emit_startup(bot=harness.bot)
        body = await (await client.get("/healthz")).json()
        assert (body["status"], body["mode"], body[mode]) == ("ok", mode, "running")
        await harness.dp.emit_shutdown(bot=harness.bot)
        response = await client.get("/healthz")
        assert response.status == 503
        assert (await response.json())[mode] == "stopped"


async def test_healthz_without_the_database_is_503(
    database_url: str, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    # Nothing listens on port 1: the database does not answer.
    broken = create_engine("postgresql+asyncpg://postgres@127.0.0.1:1/absent")
    try:
        settings = api_settings(database_url)
        async with serve_api(broken, session_factory, clock, settings) as client:
            response = await client.get("/healthz")
            assert response.status == 503
            body = await response.json()
            assert (body["status"], body["database"]) == ("unavailable", "unavailable")
    finally:
        await broken.dispose()


@pytest.mark.usefixtures("seeded")
async def test_metrics_count_api_requests_and_show_the_outbox(
    database_url: str,
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> None:
    async with session_factory() as session:
        for minutes_ago, channel in ((10, "telegram"), (3, "telegram"), (1, "webhook")):
            moment = clock.now() - timedelta(minutes=minutes_ago)
            session.add(outbox_row(channel, "status_changed", now=moment))
        session.add(
            outbox_row("telegram", "status_changed", now=clock.now(), state="sent", attempts=1)
        )
        await session.commit()
    async with serve_api(engine, session_factory, clock, api_settings(database_url)) as client:
        await client.get("/api/v1/decisions", headers=AUTH)
        await client.get("/api/v1/decisions")
        await client.get("/api/v1/decisions?limit=0", headers=AUTH)
        response = await client.get("/metrics")
        assert response.status == 200
        assert response.content_type == "text/plain"
        values = samples(await response.text())
    route = ("route", "/api/v1/decisions")
    for status in ("200", "401", "422"):
        key = ("dpo_bot_api_requests_total", (("method", "GET"), route, ("status", status)))
        assert values[key] == 1
    assert values[("dpo_bot_outbox_pending", (("channel", "telegram"),))] == 2
    assert values[("dpo_bot_outbox_pending", (("channel", "webhook"),))] == 1
    oldest = "dpo_bot_outbox_oldest_pending_age_seconds"
    assert values[(oldest, (("channel", "telegram"),))] == 600
    assert values[(oldest, (("channel", "webhook"),))] == 60


@pytest.mark.usefixtures("seeded")
async def test_metrics_count_updates_and_time_their_handling(harness: BotHarness) -> None:
    metrics: Metrics = harness.dp["metrics"]
    await harness.send(1001, "/start")
    await harness.send(2000, "/help")
    values = samples(metrics.render().decode())
    assert values[("dpo_bot_updates_total", (("type", "message"),))] == 2
    assert values[("dpo_bot_update_handling_seconds_count", (("type", "message"),))] == 2
    harness.assert_no_errors()
