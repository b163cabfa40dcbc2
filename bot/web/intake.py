"""A messenger's webhook on the web server (bot/conversation/intake.py does the bookkeeping):
401 without its secret, 400 for what is not an update, 200 once its update is handled and
acknowledged, 503 otherwise (the messenger delivers it again). `WebhookEndpoint` is what the
Telegram and MAX receivers share; each reads its own updates."""

from __future__ import annotations

import hmac
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import ClassVar

from aiohttp import web

from bot.conversation.intake import Messenger, WebhookIntake
from bot.conversation.receipts import Receipt

# How an update is handled (the front end's feed), and the name of the task that does it.
Handling = tuple[Callable[[], Awaitable[Receipt]], str]


def refused(
    request: web.Request, header: str, secret: str, log: logging.Logger, warning: str
) -> web.Response | None:
    """401 unless the request carries `secret` in `header` (compared in constant time);
    `warning` goes to the front end's `log`. None: the secret is right."""
    given = request.headers.get(header, "").encode()
    if hmac.compare_digest(given, secret.encode()):
        return None
    log.warning(warning)
    return web.json_response({"error": "unauthorized"}, status=401)


def webhook_answer(receipt: Receipt | None) -> web.Response:
    """`receipt`: None when the endpoint was stopping and did not take the update."""
    if receipt is None:
        return web.json_response({"error": "stopping"}, status=503)
    if receipt.acknowledged:
        return web.json_response({})
    return web.json_response({"error": "not handled, deliver again"}, status=503)


class WebhookEndpoint(ABC):
    """The endpoint a messenger POSTs its updates to (`path`): the secret checked in `header`
    on every request, the update read by the front end (`take`), and each request answered
    once its update is handled, at most `concurrency` at once. A stop takes no more (503: the
    messenger delivers them again) and waits for those in progress up to `drain_seconds`."""

    path: ClassVar[str]
    header: ClassVar[str]

    def __init__(self, secret: str, of: Messenger, concurrency: int, drain_seconds: float) -> None:
        self.secret = secret
        self.of = of
        self.drain_seconds = drain_seconds
        self._intake = WebhookIntake(concurrency, of)

    @abstractmethod
    def take(self, raw: object) -> Handling | None:
        """The handling of the update in the request's JSON `raw`; None if it is not one."""

    def mount(self, app: web.Application) -> None:
        app.router.add_post(self.path, self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        name = self.of.name
        warning = f"{name} webhook request refused: wrong or missing secret"
        refusal = refused(request, self.header, self.secret, self.of.log, warning)
        if refusal is not None:
            return refusal
        try:
            raw = await request.json()
        except ValueError:  # JSONDecodeError is a ValueError
            raw = None
        taken = self.take(raw)
        if taken is None:
            self.of.log.warning("%s webhook request refused: not a %s update", name, name)
            return web.json_response({"error": f"not a {name} update"}, status=400)
        handle, task_name = taken
        return webhook_answer(await self._intake.receive(handle, name=task_name))

    @property
    def in_flight(self) -> int:
        return self._intake.in_flight

    async def idle(self) -> None:
        """Wait until every update taken in so far has been processed."""
        await self._intake.idle()

    async def stop(self, grace_seconds: float | None = None) -> None:
        """Take no more updates (they get 503 and come again); wait up to `grace_seconds`
        (`drain_seconds` by default) for those in progress; cancel the rest: rolled back and
        unanswered, the messenger delivers them again."""
        await self._intake.stop(self.drain_seconds if grace_seconds is None else grace_seconds)
