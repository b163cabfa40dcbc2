"""End to end: the web module pushes applications through the API, the director's push arrives
through the Bot API double, the director approves with a comment, and the decision goes back to
the web module: in the pull feed, and POSTed, signed, to a receiver that fails twice first."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest
from aiohttp import ClientSession
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.telegram.sender import TelegramSender
from bot.web import decisions_webhook as webhook
from services.clock import ManualClock
from storage.db import create_engine, create_session_factory
from storage.migrate import upgrade
from storage.models import OutboxMessage
from tests import factories
from tests.api_support import AUTH, WebhookReceiver, application_body, serve_api
from tests.fakes.bot_api import FakeBotAPI
from tests.harness import BotHarness, test_settings
from tests.integration.test_api_health import samples
from tests.processes import free_port, running, sqlite_url

SECRET = "web-module-shared-secret-0123456789"
DIRECTOR, SECOND_DIRECTOR, APPLICANT = 1001, 1002, 1003


@pytest.mark.usefixtures("seeded")
async def test_from_the_web_module_to_the_director_and_back(
    api: FakeBotAPI,
    database_url: str,
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> None:
    async with WebhookReceiver(500, 0) as receiver:
        settings = test_settings(
            api,
            database_url,
            API_TOKEN=AUTH["Authorization"].removeprefix("Bearer "),
            DPO_WEBHOOK_URL=receiver.url,
            DPO_WEBHOOK_SECRET=SECRET,
        )
        harness = BotHarness(api, settings, session_factory, clock)
        notifier = TelegramSender(harness.bot, settings).worker(session_factory, clock)
        try:
            async with serve_api(engine, session_factory, clock, settings) as client:
                # 1. The web module sends two applications of organisation 10: one to decide,
                # one its director already approved in the web module.
                response = await client.post(
                    "/api/v1/applications:batch",
                    json={
                        "applications": [
                            application_body(number=39744, description="Первая диагностика"),
                            application_body(number=39742, applicant_id=4, status="approved"),
                        ]
                    },
                    headers=AUTH,
                )
                assert response.status == 200
                assert (await response.json())["created"] == 2

                # 2. The dispatcher sends the push to both directors through the double.
                assert await notifier.drain() == 2
                push = api.last_bot_message(DIRECTOR)
                assert "№39744" in push.text
                assert push.buttons()[0] == ["✅ Одобрить", "❌ Отменить"]
                assert "№39744" in api.last_bot_message(SECOND_DIRECTOR).text
                assert not [m for m in api.chat(APPLICANT) if m.from_bot]

                # 3. The director approves right from the push, with a comment.
                clock.advance(minutes=3)
                prompt = await harness.press(DIRECTOR, "✅ Одобрить", push.message_id)
                assert "Напишите комментарий для заявителя" in prompt.text
                approved = await harness.send(DIRECTOR, "Одобряю, ждём на диагностике")
                assert "Заявка №39744 одобрена" in approved.text
                harness.assert_no_errors()
                assert await notifier.drain() == 1
                told = api.last_bot_message(APPLICANT)
                assert "№39744" in told.text
                assert "Одобряю, ждём на диагностике" in told.text

                # 4. The decision is in the pull feed (the web module's own approval is not).
                response = await client.get("/api/v1/decisions?after=0", headers=AUTH)
                page = await response.json()
                [decision] = page["decisions"]
                assert decision["application_number"] == 39744
                assert (decision["action"], decision["comment"], decision["actor_role"]) == (
                    "approve",
                    "Одобряю, ждём на диагностике",
                    "director",
                )
                assert (decision["from_status"], decision["to_status"]) == ("new", "approved")
                assert page["next_cursor"] == decision["id"]

            # 5. And it is POSTed to the web module: refused twice, then accepted.
            async with ClientSession() as http:
                worker = webhook.build_worker(settings, session_factory, http, clock)
                for _ in range(3):
                    assert await worker.drain() == 1
                    clock.advance(seconds=webhook.POLICY.cap)
                assert await worker.drain() == 0
        finally:
            await harness.close()

    assert len(receiver.requests) == 3
    for headers, body in receiver.requests:
        timestamp = headers["X-Timestamp"]
        mac = hmac.new(SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
        assert headers["X-Signature"] == "sha256=" + mac.hexdigest()
        assert json.loads(body) == decision
    async with session_factory() as session:
        row = (
            await session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "webhook"))
        ).one()
    assert (row.state, row.attempts) == ("sent", 2)


async def test_the_bot_process_serves_the_api_and_delivers_decisions(tmp_path: Path) -> None:
    """`python -m bot` as deployed: the API on WEB_PORT, pushes from its dispatcher, the decision
    webhook from its background task (retried after a refusal), health and metrics."""
    database = sqlite_url(tmp_path)
    engine = create_engine(database)
    await upgrade(engine)
    async with create_session_factory(engine)() as session:
        await factories.seed_school(session)
        await session.commit()
    await engine.dispose()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with FakeBotAPI() as api, WebhookReceiver(500) as receiver, ClientSession() as http:
        for user in (DIRECTOR, SECOND_DIRECTOR, APPLICANT):
            api.add_user(user)
        env = {
            "DATABASE_URL": database,
            "BOT_TOKEN": api.token,
            "TELEGRAM_API_URL": api.url,
            "WEB_PORT": str(port),
            "API_TOKEN": AUTH["Authorization"].removeprefix("Bearer "),
            "DPO_WEBHOOK_URL": receiver.url,
            "DPO_WEBHOOK_SECRET": SECRET,
        }
        async with running(tmp_path, **env) as bot:
            await bot.wait_for(lambda: bool(api.calls_of("deleteWebhook")))
            async with http.get(f"{base}/healthz") as response:
                health = await response.json()
            assert response.status == 200, health
            assert health["tasks"] == {
                "decisions_webhook": "running",
                "digest": "running",
                "move_requests": "running",
                "notifier": "running",
                "retention": "running",
            }
            assert health["delivery"] == {"telegram": "ok", "webhook": "ok"}
            async with http.put(
                f"{base}/api/v1/applications/39744", json=application_body(), headers=AUTH
            ) as response:
                assert response.status == 201

            def pushed() -> bool:
                return any(m.from_bot and "№39744" in m.text for m in api.chat(DIRECTOR))

            await bot.wait_for(pushed)
            push = api.last_bot_message(DIRECTOR)
            api.press(DIRECTOR, "✅ Одобрить", push.message_id)
            await bot.wait_for(
                lambda: "Напишите комментарий" in api.last_bot_message(DIRECTOR).text
            )
            api.send_text(DIRECTOR, "Одобряю")
            await bot.wait_for(lambda: len(receiver.requests) == 2)

            async with http.get(f"{base}/metrics") as response:
                values = samples(await response.text())
            sends = "dpo_bot_sends_total"
            assert values[(sends, (("channel", "webhook"), ("result", "retry")))] == 1
            assert values[(sends, (("channel", "webhook"), ("result", "sent")))] == 1
            assert values[(sends, (("channel", "telegram"), ("result", "sent")))] >= 2
            code = await bot.terminate()
        err = bot.stderr()
    assert code == 0, err
    assert "Traceback" not in err
    headers, body = receiver.requests[-1]
    mac = hmac.new(SECRET.encode(), headers["X-Timestamp"].encode() + b"." + body, hashlib.sha256)
    assert headers["X-Signature"] == "sha256=" + mac.hexdigest()
    decision = json.loads(body)
    assert (decision["application_number"], decision["action"], decision["comment"]) == (
        39744,
        "approve",
        "Одобряю",
    )
    assert "Одобряю" not in err  # no personal data or comments in the logs
