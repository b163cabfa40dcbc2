"""The integration API for the web module: JSON over HTTP under /api/v1, bearer-token auth,
pydantic models that validate input and make the OpenAPI document, one transaction per request.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import IntegrityError

from bot.web.api.core import PREFIX, ApiContext, Call, Endpoint
from bot.web.api.endpoints import ENDPOINTS
from bot.web.api.errors import ApiError, ErrorBody, validation_failed
from bot.web.api.openapi import build_document
from storage.repositories import Repositories

__all__ = ["API_VERSION", "PREFIX", "ApiContext", "build_api_app", "openapi_document"]

log = logging.getLogger(__name__)

API_VERSION = "1.0.0"
CONTEXT_KEY = web.AppKey("api_context", ApiContext)

RequestHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def openapi_document() -> dict[str, Any]:
    return build_document(ENDPOINTS, version=API_VERSION)


def _json(status: int, body: BaseModel, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=body.model_dump_json().encode(),
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )


def _authorize(request: web.Request, context: ApiContext) -> None:
    """Bearer API_TOKEN, compared in constant time; without API_TOKEN the API is off."""
    challenge = {"WWW-Authenticate": 'Bearer realm="dpo-bot"'}
    expected = context.settings.API_TOKEN
    if expected is None:
        raise ApiError(
            401,
            "unauthorized",
            "API отключён: в настройках бота не задан API_TOKEN",
            headers=challenge,
        )
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise ApiError(
            401,
            "unauthorized",
            "Нужен заголовок Authorization: Bearer <API_TOKEN>",
            headers=challenge,
        )
    if not hmac.compare_digest(given.strip().encode(), expected.get_secret_value().encode()):
        raise ApiError(401, "unauthorized", "Неверный токен API", headers=challenge)


def _parse(model: type[BaseModel] | None, values: dict[str, str]) -> BaseModel | None:
    """Path and query parameters arrive as text: validated leniently ("42" is 42)."""
    if model is None:
        return None
    try:
        return model.model_validate(values)
    except ValidationError as error:
        raise validation_failed(error) from None


def _handler(context: ApiContext, endpoint: Endpoint) -> RequestHandler:
    async def handle(request: web.Request) -> web.StreamResponse:
        _authorize(request, context)
        path = _parse(endpoint.path_model, dict(request.match_info))
        query = _parse(endpoint.query_model, dict(request.query))
        body = None
        if endpoint.body_model is not None:
            raw = await request.read()
            try:
                # JSON bodies are validated strictly: "42" is not an integer there.
                body = endpoint.body_model.model_validate_json(raw, strict=True)
            except ValidationError as error:
                raise validation_failed(error) from None
        async with context.session_factory() as session:
            call = Call(context, Repositories(session), path, query, body)
            try:
                reply = await endpoint.handler(call)
                await session.commit()
            except IntegrityError:
                await session.rollback()
                raise ApiError(
                    409,
                    "conflict",
                    "Одновременно пришло другое изменение тех же данных; повторите запрос",
                ) from None
            except BaseException:
                await session.rollback()
                raise
        return _json(reply.status, reply.body)

    return handle


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return (resource.canonical if resource is not None else None) or "unmatched"


@web.middleware
async def _guard(request: web.Request, handler: RequestHandler) -> web.StreamResponse:
    """Every failure as the API's JSON error; every request counted by status."""
    try:
        response = await handler(request)
    except ApiError as error:
        response = _json(error.status, error.body, error.headers)
    except web.HTTPException as error:
        code = {
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
        }.get(error.status, "http_error")
        message = {
            404: "Нет такого адреса API; список — в /api/v1/openapi.json",
            405: "Этот метод здесь не поддерживается",
            413: "Тело запроса слишком большое",
        }.get(error.status, error.reason)
        headers = {k: v for k, v in error.headers.items() if k.lower() == "allow"}
        response = _json(error.status, ErrorBody(code=code, message=message), headers)
    except Exception:
        # Only the route: bodies and parameters may carry personal data.
        log.exception("API %s %s failed", request.method, _route_name(request))
        response = _json(
            500, ErrorBody(code="internal_error", message="Внутренняя ошибка; запрос не выполнен")
        )
    metrics = request.app[CONTEXT_KEY].metrics
    if metrics is not None:
        metrics.api_requests.labels(
            method=request.method, route=_route_name(request), status=str(response.status)
        ).inc()
    return response


def build_api_app(context: ApiContext) -> web.Application:
    """The sub-application to mount at PREFIX (`app.add_subapp(PREFIX, build_api_app(...))`)."""
    app = web.Application(middlewares=[_guard])
    app[CONTEXT_KEY] = context
    document = json.dumps(openapi_document(), ensure_ascii=False).encode()

    async def openapi(_request: web.Request) -> web.Response:
        return web.Response(body=document, content_type="application/json", charset="utf-8")

    app.router.add_get("/openapi.json", openapi, allow_head=False)
    for endpoint in ENDPOINTS:
        app.router.add_route(endpoint.method, endpoint.path, _handler(context, endpoint))
    return app
