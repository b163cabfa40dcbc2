"""Decisions made in Telegram go back to the web module: queued for the webhook with the decision
(when DPO_WEBHOOK_URL is set), then POSTed signed and retried until a 2xx."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from aiohttp import ClientSession
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.settings import Settings, SettingsError, load_settings
from bot.web import decisions_webhook as webhook
from bot.web.decisions_webhook import build_worker
from bot.web.metrics import Metrics
from services.applications import Done, perform_action
from services.clock import ManualClock
from services.domain import Action, Actor, Role
from services.outbox import MAX_RETRY_AFTER, MIN_RETRY_AFTER
from storage.models import ApplicationEvent, OutboxMessage
from storage.repositories import Repositories
from tests import factories
from tests.api_support import WebhookReceiver, api_settings
from tests.fakes.bot_api import FakeBotAPI
from tests.harness import BotHarness, test_settings
from tests.integration.test_api_health import samples

WEBHOOK = {
    "DPO_WEBHOOK_URL": "http://127.0.0.1:9/decisions",
    "DPO_WEBHOOK_SECRET": "decisions-signing-secret-0123456789",
}
DIRECTOR = 1001


@pytest.fixture
async def webhook_harness(
    api: FakeBotAPI,
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    seeded: None,
) -> AsyncIterator[BotHarness]:
    await factories.store(session_factory, factories.application(39744, 3, 10))
    harness = BotHarness(api, test_settings(api, database_url, **WEBHOOK), session_factory, clock)
    yield harness
    await harness.close()


async def webhook_rows(
    session_factory: async_sessionmaker[AsyncSession],
) -> list[tuple[str, int | None, int | None]]:
    async with session_factory() as session:
        rows = await session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.channel == "webhook")
            .order_by(OutboxMessage.id)
        )
        return [(row.kind, row.application_number, row.event_id) for row in rows]


async def test_a_director_decision_in_telegram_is_queued_for_the_web_module(
    webhook_harness: BotHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    harness = webhook_harness
    await harness.send(DIRECTOR, "/start app_39744")
    await harness.press(DIRECTOR, "✅ Одобрить")
    await harness.send(DIRECTOR, "Одобряю")
    await harness.press(DIRECTOR, "💬 Комментарии (1)")
    await harness.press(DIRECTOR, "✍️ Написать комментарий")
    await harness.send(DIRECTOR, "Ждём вас 6 сентября")
    harness.assert_no_errors()
    async with session_factory() as session:
        events = (
            await session.scalars(select(ApplicationEvent).order_by(ApplicationEvent.id))
        ).all()
    assert [(e.action, e.comment) for e in events] == [
        ("approve", "Одобряю"),
        ("comment", "Ждём вас 6 сентября"),
    ]
    assert await webhook_rows(session_factory) == [
        ("decision", 39744, events[0].id),
        ("decision", 39744, events[1].id),
    ]


async def test_without_a_webhook_url_nothing_is_queued(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession], seeded: None
) -> None:
    await factories.store(session_factory, factories.application(39744, 3, 10))
    await harness.send(DIRECTOR, "/start app_39744")
    await harness.press(DIRECTOR, "✅ Одобрить")
    await harness.press(DIRECTOR, "Без комментария")
    harness.assert_no_errors()
    assert await webhook_rows(session_factory) == []


def test_a_webhook_url_needs_its_secret() -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(
            require_bot_token=False, _env_file=None, DPO_WEBHOOK_URL="https://dpo.example/hook"
        )
    assert error.value.lines == [
        "Ошибка настройки: DPO_WEBHOOK_SECRET не задана — нужен ключ подписи решений "
        "(HMAC-SHA256) не короче 32 символов, когда задан DPO_WEBHOOK_URL; тот же ключ задаётся "
        "в модуле «Организация ДПО», например "
        "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
    ]


# -- delivery -----------------------------------------------------------------------------------

SECRET = WEBHOOK["DPO_WEBHOOK_SECRET"]


async def decided(
    session_factory: async_sessionmaker[AsyncSession], clock: ManualClock, comment: str
) -> ApplicationEvent:
    """Application 39744 approved by director 1 with a comment, queued for the webhook."""
    async with session_factory() as session:
        session.add(factories.application(39744, 3, 10))
        await session.flush()
        outcome = await perform_action(
            Repositories(session),
            Actor(1, "Петров Пётр Петрович", Role.DIRECTOR, frozenset({Role.DIRECTOR}), 10),
            39744,
            Action.APPROVE,
            comment=comment,
            clock=clock,
            decisions_webhook=True,
        )
        assert isinstance(outcome, Done)
        await session.commit()
    return outcome.event


async def webhook_row(session_factory: async_sessionmaker[AsyncSession]) -> OutboxMessage:
    async with session_factory() as session:
        return (
            await session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "webhook"))
        ).one()


def settings_for(receiver: WebhookReceiver, database_url: str) -> Settings:
    return api_settings(database_url, DPO_WEBHOOK_URL=receiver.url, DPO_WEBHOOK_SECRET=SECRET)


@pytest.mark.usefixtures("seeded")
async def test_a_decision_is_posted_signed_and_retried_until_accepted(
    database_url: str, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    event = await decided(session_factory, clock, "Одобряю, ждём на диагностике")
    metrics = Metrics()
    async with WebhookReceiver(500, 0) as receiver, ClientSession() as http:
        worker = build_worker(
            settings_for(receiver, database_url), session_factory, http, clock, metrics
        )
        assert await worker.drain() == 1  # HTTP 500
        row = await webhook_row(session_factory)
        assert (row.state, row.attempts, row.last_error) == ("pending", 1, "HTTP 500")
        assert row.available_at > clock.now()
        assert await worker.drain() == 0  # not due yet
        clock.advance(seconds=webhook.POLICY.cap)
        assert await worker.drain() == 1  # the connection drops
        row = await webhook_row(session_factory)
        assert (row.state, row.attempts) == ("pending", 2)
        assert row.last_error is not None
        assert row.last_error.startswith("network: ")
        clock.advance(seconds=webhook.POLICY.cap)
        assert await worker.drain() == 1  # accepted
    row = await webhook_row(session_factory)
    assert (row.state, row.attempts, row.sent_at) == ("sent", 2, clock.now())

    assert len(receiver.requests) == 3
    headers, body = receiver.requests[-1]
    timestamp = headers["X-Timestamp"]
    assert timestamp == str(int(clock.now().timestamp()))
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    assert headers["X-Signature"] == f"sha256={expected.hexdigest()}"
    assert headers["X-Decision-Id"] == str(event.id)
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {
        "id": event.id,
        "application_number": 39744,
        "action": "approve",
        "from_status": "new",
        "to_status": "approved",
        "comment": "Одобряю, ждём на диагностике",
        "actor_account_id": 1,
        "actor_name": "Петров Пётр Петрович",
        "actor_role": "director",
        "source": "telegram",
        "created_at": "2026-09-01T06:00:00Z",
    }
    # every attempt carried the same body, each signed with its own timestamp
    assert {b for _, b in receiver.requests} == {body}
    values = samples(metrics.render().decode())
    assert values[("dpo_bot_sends_total", (("channel", "webhook"), ("result", "sent")))] == 1
    assert values[("dpo_bot_sends_total", (("channel", "webhook"), ("result", "retry")))] == 2


@pytest.mark.usefixtures("seeded")
async def test_429_waits_retry_after_without_spending_an_attempt(
    database_url: str, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await decided(session_factory, clock, "Одобрено")
    async with WebhookReceiver(429) as receiver, ClientSession() as http:
        worker = build_worker(settings_for(receiver, database_url), session_factory, http, clock)
        assert await worker.drain() == 1
        row = await webhook_row(session_factory)
        assert (row.state, row.attempts) == ("pending", 0)
        assert row.available_at == clock.now() + timedelta(seconds=webhook.DEFAULT_RETRY_AFTER)


def http_date(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC), usegmt=True)


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    ("retry_after", "waited"),
    [
        ("120", 120),
        # far beyond any sensible wait (timedelta overflowed on it): capped
        ("99999999999999999999", MAX_RETRY_AFTER),
        ("9" * 5000, MAX_RETRY_AFTER),  # more digits than int() reads
        (lambda now: http_date(now + timedelta(seconds=90)), 90),
        (lambda now: http_date(now + timedelta(days=365)), MAX_RETRY_AFTER),
        (lambda now: http_date(now - timedelta(hours=1)), MIN_RETRY_AFTER),  # past: no busy loop
        ("0", MIN_RETRY_AFTER),
        ("soon", webhook.DEFAULT_RETRY_AFTER),
        ("-5", webhook.DEFAULT_RETRY_AFTER),
    ],
)
async def test_retry_after_is_read_in_both_forms_and_capped(
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    retry_after: str | Callable[[datetime], str],
    waited: float,
) -> None:
    await decided(session_factory, clock, "Одобрено")
    header = retry_after if isinstance(retry_after, str) else retry_after(clock.now())
    async with (
        WebhookReceiver(429, headers={"Retry-After": header}) as receiver,
        ClientSession() as http,
    ):
        worker = build_worker(settings_for(receiver, database_url), session_factory, http, clock)
        assert await worker.drain() == 1
        # one receiver: its 429 holds back every decision, as long as it asks (capped)
        loop_now = asyncio.get_running_loop().time()
        assert worker.limiter.paused_until <= loop_now + MAX_RETRY_AFTER
    row = await webhook_row(session_factory)
    assert (row.state, row.attempts, row.last_error) == ("pending", 0, "HTTP 429")
    assert row.available_at == clock.now() + timedelta(seconds=waited)


@pytest.mark.usefixtures("seeded")
async def test_an_unreachable_receiver_is_retried(
    database_url: str, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await decided(session_factory, clock, "Одобрено")
    async with WebhookReceiver() as receiver:
        settings = settings_for(receiver, database_url)
    # the receiver is gone: nothing listens there any more
    async with ClientSession() as http:
        worker = build_worker(settings, session_factory, http, clock)
        assert await worker.drain() == 1
    row = await webhook_row(session_factory)
    assert (row.state, row.attempts) == ("pending", 1)
    assert row.last_error == "network: ClientConnectorError"


@pytest.mark.usefixtures("seeded")
async def test_a_row_without_its_decision_fails(
    database_url: str, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await factories.store(
        session_factory,
        factories.outbox_row("webhook", "decision", now=clock.now(), event_id=987654),
    )
    async with WebhookReceiver() as receiver, ClientSession() as http:
        worker = build_worker(settings_for(receiver, database_url), session_factory, http, clock)
        await worker.drain()
    row = await webhook_row(session_factory)
    assert (row.state, row.last_error) == ("failed", "the decision is no longer in history")
    assert receiver.requests == []
