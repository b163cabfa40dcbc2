"""The web app with the integration API on a test server, and small helpers around it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.links import deep_links
from bot.settings import Settings
from bot.web.api import ApiContext
from bot.web.api.core import ForgetConversation
from bot.web.metrics import Metrics
from bot.web.server import STALLED_AFTER, Liveness, build_web_app
from services.clock import Clock
from tests.harness import SNILS_KEY

API_TOKEN = "test-api-token-0123456789abcdefghij"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
BOT_USERNAME = "dpo_test_bot"


def api_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "DATABASE_URL": database_url,
        "API_TOKEN": API_TOKEN,
        "SNILS_HASH_KEY": SNILS_KEY,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@asynccontextmanager
async def serve_api(
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    clock: Clock,
    settings: Settings,
    *,
    liveness: Liveness | None = None,
    state: dict[str, object] | None = None,
    metrics: Metrics | None = None,
    stalled_after: float = STALLED_AFTER,
    forget_conversation: ForgetConversation | None = None,
) -> AsyncIterator[TestClient[Any, Any]]:
    """The whole web app (health, metrics, API) on 127.0.0.1, with a client for it."""
    metrics = metrics or Metrics()
    context = ApiContext(
        settings,
        session_factory,
        clock,
        deep_links(settings, BOT_USERNAME),
        metrics,
        forget_conversation,
    )
    app = build_web_app(
        engine,
        state if state is not None else {"mode": "polling", "polling": "running"},
        api=context,
        metrics=metrics,
        liveness=liveness,
        clock=clock,
        stalled_after=stalled_after,
    )
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def count(session_factory: async_sessionmaker[AsyncSession], model: Any, *where: Any) -> int:
    async with session_factory() as session:
        query = select(func.count()).select_from(model)
        for condition in where:
            query = query.where(condition)
        return int((await session.execute(query)).scalar_one())


async def counts(session_factory: async_sessionmaker[AsyncSession], *models: Any) -> list[int]:
    """The number of rows of each model, in that order."""
    return [await count(session_factory, model) for model in models]


def application_body(applicant_id: int = 3, organization_id: int = 10, **fields: Any) -> dict:
    body: dict[str, Any] = {
        "applicant_id": applicant_id,
        "organization_id": organization_id,
        "program": "Диагностика личностно профессионального развития участников кадрового "
        "резерва руководителей образовательных организаций в системе образования Челябинской "
        "области на период 2023 – 2024 гг.",
        "group": "Диагностика. Кадровый резерв руководителей",
        "study_from": "2026-09-06",
        "study_to": "2026-09-10",
        "dpo_organization": "ОГБУ «Челябинский центр оценки профессионального мастерства и "
        "квалификаций педагогов»",
        "status": "new",
        "version": 1,
    }
    body.update(fields)
    return body


class WebhookReceiver:
    """The web module's end of the decisions webhook, on 127.0.0.1: answers with the planned
    statuses in turn (then 200), or drops the connection for a planned 0; records every request.
    `headers` go with every answer that is not a 2xx (a 429's Retry-After).
    """

    def __init__(self, *planned: int, headers: dict[str, str] | None = None) -> None:
        self.planned = list(planned)
        self.headers = headers or {}
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((dict(request.headers), await request.read()))
        status = self.planned.pop(0) if self.planned else 200
        if status == 0:
            assert request.transport is not None
            request.transport.close()  # the connection drops before any answer
            return web.Response(status=500)
        if status < 300:
            return web.Response(status=status, text="ok")
        return web.Response(status=status, text="unavailable", headers=self.headers)

    async def __aenter__(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_post("/dpo/decisions", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/dpo/decisions"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()
