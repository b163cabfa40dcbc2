"""The aiohttp web app: health now; link pages, webhook and the integration API join it."""

from __future__ import annotations

from aiohttp import web
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
