"""Prometheus metrics of one process: a registry per app (tests build many), served at /metrics.

Updates by type and their handling time come from a dispatcher middleware; outbox depth and the
age of its oldest pending message are read from the database at scrape time, sends by result from
the outbox workers' own counts; the API counts its requests by status.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.clock import Clock
from services.outbox import WorkerStats
from storage.repositories import Repositories

CHANNELS = ("telegram", "webhook")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.updates = Counter(
            "dpo_bot_updates",
            "Telegram updates handled, by update type",
            ["type"],
            registry=self.registry,
        )
        self.update_seconds = Histogram(
            "dpo_bot_update_handling_seconds",
            "Time to handle one update (middlewares, handler, transaction), by update type",
            ["type"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.outbox_pending = Gauge(
            "dpo_bot_outbox_pending",
            "Outbox messages waiting to be sent, by channel",
            ["channel"],
            registry=self.registry,
        )
        self.outbox_oldest_seconds = Gauge(
            "dpo_bot_outbox_oldest_pending_age_seconds",
            "Age of the oldest outbox message waiting to be sent, by channel (0: none waits)",
            ["channel"],
            registry=self.registry,
        )
        self.sends = SendsCollector()
        self.registry.register(self.sends)
        self.api_requests = Counter(
            "dpo_bot_api_requests",
            "Integration API requests, by method, route and HTTP status",
            ["method", "route", "status"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def refresh_outbox(
        self, session_factory: async_sessionmaker[AsyncSession], clock: Clock
    ) -> None:
        async with session_factory() as session:
            stats = await Repositories(session).outbox.pending_stats()
        now = clock.now()
        for channel in sorted({*CHANNELS, *stats}):
            count, oldest = stats.get(channel, (0, None))
            self.outbox_pending.labels(channel=channel).set(count)
            age = (now - oldest).total_seconds() if oldest is not None else 0.0
            self.outbox_oldest_seconds.labels(channel=channel).set(max(age, 0.0))


class SendsCollector(Collector):
    """`dpo_bot_sends_total{channel, result}`, read at scrape time from the counts the outbox
    workers keep (services.outbox.WorkerStats), so every sender is counted the same way."""

    RESULTS = (
        ("sent", "sent"),
        ("retry", "retried"),
        ("rate_limited", "rate_limited"),
        ("held", "held"),
        ("failed", "failed"),
    )

    def __init__(self) -> None:
        self._workers: list[tuple[str, WorkerStats]] = []

    def watch(self, channel: str, stats: WorkerStats) -> None:
        self._workers.append((channel, stats))

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "dpo_bot_sends",
            "Sends from the outbox by channel and result (sent; retry: a failed attempt that "
            "will be retried; rate_limited: 429; held: the chat blocked the bot; failed)",
            labels=["channel", "result"],
        )
        totals: dict[tuple[str, str], int] = {}
        for channel, stats in self._workers:
            for result, attribute in self.RESULTS:
                key = (channel, result)
                totals[key] = totals.get(key, 0) + getattr(stats, attribute)
        for (channel, result), value in sorted(totals.items()):
            family.add_metric([channel, result], value)
        yield family


Handler = Callable[[Any, dict[str, Any]], Awaitable[Any]]


class UpdateMetricsMiddleware:
    """The outermost update middleware: counts updates and times their handling.

    A plain callable (aiogram takes any), so the command-line tools that import this module
    do not load aiogram."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    async def __call__(self, handler: Handler, event: Any, data: dict[str, Any]) -> Any:
        kind = str(getattr(event, "event_type", type(event).__name__))
        started = time.perf_counter()
        try:
            return await handler(event, data)
        finally:
            self.metrics.updates.labels(type=kind).inc()
            self.metrics.update_seconds.labels(type=kind).observe(time.perf_counter() - started)


__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "UpdateMetricsMiddleware"]
