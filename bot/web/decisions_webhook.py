"""The decisions webhook: every decision made here is POSTed to DPO_WEBHOOK_URL, signed, from the
outbox (channel "webhook"), and retried with backoff until the web module answers 2xx.

The outbox worker of services/outbox.py claims, leases and records; this module only turns a row
into a signed request and the answer into an outcome. Decisions of one application go in order,
one at a time (the worker orders by application number); several bot replicas may share the work.

Headers: `X-Timestamp` (Unix seconds), `X-Signature: sha256=<hex HMAC-SHA256 of timestamp + "." +
body, key DPO_WEBHOOK_SECRET>`, `X-Decision-Id`. The body is the decision as in the pull feed.

A 429 waits its `Retry-After` (delta-seconds or an HTTP-date), at most MAX_RETRY_AFTER (10
minutes), and holds back every decision: there is one receiver.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

from aiohttp import ClientError, ClientSession, ClientTimeout
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.settings import Settings
from bot.web.metrics import Metrics
from services.clock import Clock
from services.decisions import WEBHOOK_CHANNEL, decision_of, is_decision, signature, webhook_body
from services.outbox import (
    MAX_RETRY_AFTER,
    OutboxWorker,
    Outcome,
    Retry,
    RetryAfter,
    RetryPolicy,
    Sent,
    Undeliverable,
    capped_retry_after,
)
from storage.models import OutboxMessage
from storage.repositories import Repositories

log = logging.getLogger(__name__)

TIMEOUT = 10.0  # seconds for one POST
RATE = 20.0  # POSTs per second at most
DEFAULT_RETRY_AFTER = 30.0  # seconds, for a 429 without a usable Retry-After
# "Until a 2xx": about 5 s doubling up to 10 minutes between attempts, with no last attempt.
POLICY = RetryPolicy(base=5.0, cap=600.0, max_attempts=2**31 - 1)


def retry_after_seconds(value: str, now: datetime) -> float | None:
    """The wait a `Retry-After` header asks for (RFC 9110, 10.2.3), capped at MAX_RETRY_AFTER:
    delta-seconds («120», of any length) or an HTTP-date («Wed, 21 Oct 2026 07:28:00 GMT»,
    from `now`); None when it is neither."""
    value = value.strip()
    if value.isascii() and value.isdigit():
        digits = value.lstrip("0") or "0"
        # Ten digits are more than any wait we make; and int() refuses 4,300 digits or more.
        return capped_retry_after(int(digits)) if len(digits) < 10 else MAX_RETRY_AFTER
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:  # "-0000": UTC, as HTTP-dates are
        moment = moment.replace(tzinfo=now.tzinfo)
    return capped_retry_after((moment - now).total_seconds())


@dataclass(frozen=True)
class Delivery:
    decision_id: int
    body: bytes


class WebhookSender:
    """Signs and POSTs one decision; never raises, reports the outcome."""

    def __init__(
        self,
        url: str,
        secret: str,
        http: ClientSession,
        clock: Clock,
        timeout: float = TIMEOUT,
    ) -> None:
        self.url = url
        self.secret = secret
        self.http = http
        self.clock = clock
        self.timeout = ClientTimeout(total=timeout)

    async def prepare(self, repo: Repositories, row: OutboxMessage) -> Delivery:
        event = await repo.events.get(row.event_id) if row.event_id is not None else None
        if event is None or not is_decision(event):
            raise Undeliverable("the decision is no longer in history")
        return Delivery(event.id, webhook_body(decision_of(event)))

    async def send(self, row: OutboxMessage, prepared: Delivery) -> Outcome:
        timestamp = str(int(self.clock.now().timestamp()))
        headers = {
            "Content-Type": "application/json",
            "X-Timestamp": timestamp,
            "X-Signature": signature(self.secret, timestamp, prepared.body),
            "X-Decision-Id": str(prepared.decision_id),
        }
        try:
            async with self.http.post(
                self.url,
                data=prepared.body,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
            ) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After", "")
                await response.read()
        except (ClientError, TimeoutError) as error:
            return Retry(f"network: {type(error).__name__}")
        if 200 <= status < 300:
            return Sent()
        if status == 429:  # asked to slow down: wait as told, without spending an attempt
            seconds = retry_after_seconds(retry_after, self.clock.now())
            if seconds is None:
                seconds = DEFAULT_RETRY_AFTER
            return RetryAfter(seconds, "HTTP 429", overall=True)
        return Retry(f"HTTP {status}")


def build_worker(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    http: ClientSession,
    clock: Clock,
    metrics: Metrics | None = None,
) -> OutboxWorker[Delivery]:
    assert settings.DPO_WEBHOOK_URL is not None
    assert settings.DPO_WEBHOOK_SECRET is not None
    sender = WebhookSender(
        str(settings.DPO_WEBHOOK_URL), settings.DPO_WEBHOOK_SECRET.get_secret_value(), http, clock
    )
    worker = OutboxWorker(
        session_factory,
        sender,
        channel=WEBHOOK_CHANNEL,
        clock=clock,
        rate=RATE,
        policy=POLICY,
        order_key="application_number",
    )
    if metrics is not None:
        metrics.watch_worker(worker)
    return worker


class DecisionsWebhook:
    """The background task of the bot process: runs the worker with its own HTTP session."""

    def __init__(
        self,
        settings: Settings,
        session_factory: async_sessionmaker[AsyncSession],
        clock: Clock,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.session_factory = session_factory
        self.clock = clock
        self.metrics = metrics
        self._worker: OutboxWorker[Delivery] | None = None

    async def run(self) -> None:
        async with ClientSession() as http:
            self._worker = build_worker(
                self.settings, self.session_factory, http, self.clock, self.metrics
            )
            log.info("decisions webhook: delivering to the web module")
            await self._worker.run()

    async def stop(self, task: asyncio.Task[None]) -> None:
        """Stop the worker (sends in flight finish briefly, the rest stay queued) and wait."""
        if self._worker is not None:
            self._worker.stop()
        else:
            task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        except Exception:  # it already ended with an error (/healthz showed it stopped)
            log.exception("decisions webhook: the delivery task had failed")
