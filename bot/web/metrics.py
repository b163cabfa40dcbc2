"""Prometheus metrics of one process: a registry per app (tests build many), served at /metrics.

Updates by type and their handling time come from a dispatcher middleware; outbox depth and the
age of its oldest pending message are read from the database at scrape time, sends by result and
how long a worker has been stalled from the outbox workers of this process (`watch_worker`); the
API counts its requests by status.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.clock import Clock
from services.outbox import OutboxWorker
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
        self.workers = WorkersCollector()
        self.registry.register(self.workers)
        self.api_requests = Counter(
            "dpo_bot_api_requests",
            "Integration API requests, by method, route and HTTP status",
            ["method", "route", "status"],
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def watch_worker(self, worker: OutboxWorker[Any]) -> None:
        """Count the worker's sends and watch its progress (/metrics, /healthz)."""
        self.workers.watch(worker)

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


class WorkersCollector(Collector):
    """The outbox workers of this process (services.outbox.OutboxWorker), read at scrape time:
    `dpo_bot_sends_total{channel, result}` from the counts they keep, so every sender is
    counted the same way, and `dpo_bot_outbox_stalled_seconds{channel}`."""

    RESULTS = (
        ("sent", "sent"),
        ("retry", "retried"),
        ("rate_limited", "rate_limited"),
        ("held", "held"),
        ("failed", "failed"),
    )

    def __init__(self) -> None:
        self._workers: list[OutboxWorker[Any]] = []

    def watch(self, worker: OutboxWorker[Any]) -> None:
        self._workers.append(worker)

    def stalled(self) -> dict[str, float]:
        """Per channel with a worker here: the longest any of them has been stalled (seconds)."""
        stalled: dict[str, float] = {}
        for worker in self._workers:
            stalled[worker.channel] = max(stalled.get(worker.channel, 0.0), worker.stalled_for())
        return stalled

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "dpo_bot_sends",
            "Sends from the outbox by channel and result (sent; retry: a failed attempt that "
            "will be retried; rate_limited: 429; held: the chat blocked the bot; failed)",
            labels=["channel", "result"],
        )
        totals: dict[tuple[str, str], int] = {}
        for worker in self._workers:
            for result, attribute in self.RESULTS:
                key = (worker.channel, result)
                totals[key] = totals.get(key, 0) + getattr(worker.stats, attribute)
        for (channel, result), value in sorted(totals.items()):
            family.add_metric([channel, result], value)
        yield family
        stalled = GaugeMetricFamily(
            "dpo_bot_outbox_stalled_seconds",
            "How long this process's outbox worker of the channel has held messages without "
            "recording any outcome, beyond a 429's pause (0: it makes progress)",
            labels=["channel"],
        )
        for channel, seconds in sorted(self.stalled().items()):
            stalled.add_metric([channel], seconds)
        yield stalled


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
