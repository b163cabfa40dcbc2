"""The aiohttp web app: /healthz, /metrics and the integration API; link pages and Telegram's
webhook join it."""

from __future__ import annotations

import asyncio
import logging
import re

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.web.api import PREFIX, ApiContext, build_api_app
from bot.web.metrics import CONTENT_TYPE_LATEST, Metrics
from services.clock import Clock, SystemClock
from storage.db import create_session_factory

ENGINE_KEY = web.AppKey("engine", AsyncEngine)
STATE_KEY = web.AppKey("state", dict)


class Liveness:
    """The process's background tasks (outbox dispatchers, the decisions webhook), watched for
    /healthz: a task that has ended makes the process unhealthy."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def watch(self, name: str, task: asyncio.Task[None]) -> None:
        self._tasks[name] = task

    def report(self) -> dict[str, str]:
        return {
            name: "stopped" if task.done() else "running"
            for name, task in sorted(self._tasks.items())
        }


# Seconds the web server waits for requests in progress when it stops (twice at most: aiohttp
# waits, then cancels them and waits again).
SHUTDOWN_SECONDS = 3.0

LIVENESS_KEY = web.AppKey("liveness", Liveness)
METRICS_KEY = web.AppKey("metrics", Metrics)
CLOCK_KEY = web.AppKey("clock", Clock)
STALLED_AFTER_KEY = web.AppKey("stalled_after", float)

# An outbox worker that has held messages this long without recording any outcome (beyond a
# 429's pause) is stalled: sends time out within 15 s, so this is no slow receiver.
STALLED_AFTER = 120.0


async def healthz(request: web.Request) -> web.Response:
    """200 when the database answers, polling (or the webhook) runs, every background task is
    alive and no outbox worker is stalled; 503 otherwise ("degraded" when only delivery is
    stalled). `state` holds the mode ("polling"/"webhook") and its state."""
    state: dict[str, object] = request.app[STATE_KEY]
    try:
        async with request.app[ENGINE_KEY].connect() as connection:
            await connection.execute(text("SELECT 1"))
        database = "ok"
    except Exception:  # any failure of the database makes the service unhealthy
        database = "unavailable"
    tasks = request.app[LIVENESS_KEY].report()
    limit = request.app[STALLED_AFTER_KEY]
    delivery = {
        channel: "stalled" if seconds > limit else "ok"
        for channel, seconds in request.app[METRICS_KEY].workers.stalled().items()
    }
    alive = (
        database == "ok"
        and "stopped" not in tasks.values()
        and state.get(str(state.get("mode"))) != "stopped"
    )
    status = "unavailable" if not alive else "degraded" if "stalled" in delivery.values() else "ok"
    body = {
        "status": status,
        "database": database,
        **state,
        "tasks": tasks,
        "delivery": delivery,
    }
    return web.json_response(body, status=200 if status == "ok" else 503)


async def serve_metrics(request: web.Request) -> web.Response:
    registry = request.app[METRICS_KEY]
    await registry.refresh_outbox(
        create_session_factory(request.app[ENGINE_KEY]), request.app[CLOCK_KEY]
    )
    return web.Response(body=registry.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def build_web_app(
    engine: AsyncEngine,
    state: dict[str, object],
    *,
    api: ApiContext | None = None,
    metrics: Metrics | None = None,
    liveness: Liveness | None = None,
    clock: Clock | None = None,
    stalled_after: float = STALLED_AFTER,
) -> web.Application:
    """The web app; the integration API is mounted at /api/v1 when `api` is given."""
    # Batches of up to 1,000 applications with long texts fit in this.
    app = web.Application(client_max_size=32 * 1024 * 1024)
    app[ENGINE_KEY] = engine
    app[STATE_KEY] = state
    app[LIVENESS_KEY] = liveness or Liveness()
    app[METRICS_KEY] = metrics or (api.metrics if api and api.metrics else Metrics())
    app[CLOCK_KEY] = clock or (api.clock if api else SystemClock())
    app[STALLED_AFTER_KEY] = stalled_after
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", serve_metrics)
    if api is not None:
        app.add_subapp(PREFIX, build_api_app(api))
    return app


# One-time tokens travel in paths (/link/<token>) and OIDC codes and states in query strings:
# the access log keeps the route, never those.
_SECRET_PATH = re.compile(r"^/link/(?!callback$|confirm$|launch\.js$)[^/]+")


def loggable_path(path: str) -> str:
    return _SECRET_PATH.sub("/link/…", path)


class RedactingAccessLogger(AbstractAccessLogger):
    """The access log without query strings and link tokens."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %.3fs",
            request.method,
            loggable_path(request.path),
            response.status,
            time,
        )


def make_runner(app: web.Application) -> web.AppRunner:
    """The runner every web server of the bot uses: the access log redacted; on a stop,
    requests still in progress get SHUTDOWN_SECONDS (the webhooks' updates are drained before),
    not aiohttp's minute: a request whose body never comes must not hold up the stop."""
    return web.AppRunner(
        app,
        access_log_class=RedactingAccessLogger,
        access_log=logging.getLogger("aiohttp.access"),
        shutdown_timeout=SHUTDOWN_SECONDS,
    )
