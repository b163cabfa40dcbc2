"""Schemathesis against the served OpenAPI document: generated requests, valid and invalid, must
never get a 5xx or a response that breaks the document (status, content type, body schema), and
must be refused without the token. Examples are bounded so this stays well under a minute."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bot.links import deep_links
from bot.web.api import ApiContext, openapi_document
from bot.web.metrics import Metrics
from bot.web.server import build_web_app
from services.clock import SystemClock
from storage.db import create_engine, create_session_factory
from storage.migrate import upgrade
from tests import factories
from tests.api_support import AUTH, BOT_USERNAME, api_settings
from tests.conftest import BACKENDS, truncate_postgres

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]


class LiveServer:
    """The web app on 127.0.0.1 in a thread of its own (schemathesis calls it synchronously)."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.base_url = ""

    async def _start(self) -> None:
        self.engine = create_engine(self.database_url)
        await upgrade(self.engine)
        session_factory = create_session_factory(self.engine)
        async with session_factory() as session:
            await factories.seed_school(session)
            await session.commit()
        metrics = Metrics()
        settings = api_settings(self.database_url)
        links = deep_links(settings, BOT_USERNAME)
        context = ApiContext(settings, session_factory, SystemClock(), links, metrics)
        app = build_web_app(self.engine, {"mode": "polling"}, api=context, metrics=metrics)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"

    async def _stop(self) -> None:
        await self.runner.cleanup()
        await self.engine.dispose()

    def __enter__(self) -> LiveServer:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=60)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module", params=BACKENDS)
def live_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A seeded database of each backend: PostgreSQL is where a too-long text or a NUL would
    surface as a 5xx."""
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("schemathesis") / "api.sqlite3"
        url = f"sqlite+aiosqlite:///{path}"
    else:
        url = request.getfixturevalue("postgres_migrated")
        asyncio.run(truncate_postgres(url))
    with LiveServer(url) as server:
        yield server


# The document the server serves is built from the same models at start-up; it is loaded here
# once at collection (schemathesis' lazy fixture loader does not work with this pytest) and the
# test below checks the served one is the same.
schema = schemathesis.openapi.from_dict(openapi_document())


def test_the_served_document_is_the_one_tested(live_server: LiveServer) -> None:
    response = requests.get(f"{live_server.base_url}/api/v1/openapi.json", timeout=10)
    assert response.json() == schema.raw_schema


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_openapi_document(case: Any, live_server: LiveServer) -> None:
    case.call_and_validate(base_url=live_server.base_url, headers=AUTH, checks=CHECKS)
