"""The aiohttp web app: health now; link pages, webhook and the integration API join it."""

from __future__ import annotations

import logging
import re

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

ENGINE_KEY = web.AppKey("engine", AsyncEngine)
STATE_KEY = web.AppKey("state", dict)


async def healthz(request: web.Request) -> web.Response:
    state: dict[str, object] = request.app[STATE_KEY]
    try:
        async with request.app[ENGINE_KEY].connect() as connection:
            await connection.execute(text("SELECT 1"))
        database = "ok"
    except Exception:  # any failure of the database makes the service unhealthy
        database = "unavailable"
    healthy = database == "ok"
    body = {"status": "ok" if healthy else "unavailable", "database": database, **state}
    return web.json_response(body, status=200 if healthy else 503)


def build_web_app(engine: AsyncEngine, state: dict[str, object]) -> web.Application:
    app = web.Application()
    app[ENGINE_KEY] = engine
    app[STATE_KEY] = state
    app.router.add_get("/healthz", healthz)
    return app


# One-time tokens travel in paths (/link/<token>) and OIDC codes and states in query strings:
# the access log keeps the route, never those.
_SECRET_PATH = re.compile(r"^/link/(?!callback$|confirm$)[^/]+")


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
    """The runner every web server of the bot uses: the access log redacted."""
    return web.AppRunner(
        app,
        access_log_class=RedactingAccessLogger,
        access_log=logging.getLogger("aiohttp.access"),
    )
