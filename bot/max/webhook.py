"""MAX webhook mode (PUBLIC_URL and MAX_WEBHOOK_SECRET set): MAX POSTs updates to
PUBLIC_URL + MAX_WEBHOOK_PATH, on the same aiohttp server as /healthz; bot/telegram/webhook.py's
design, on the same intake (bot/conversation/intake.py, bot/web/intake.py).

The bot subscribes with `POST /subscriptions` (the URL, the secret, the update types it
handles). Every request must carry the secret in `X-Max-Bot-Api-Secret` (compared in constant
time): anything else is refused with 401. An update is answered 200 only once it is handled
(committed with the record of its identity, handled before, or failed and recorded); anything
else (stopping, the database unavailable, the process killed) leaves MAX without a 200 and MAX
delivers it again (every 30-60 s, for up to 8 hours, then it unsubscribes the bot). MAX updates
carry no update id: the record is kept under the event's own identity (bot/max/updates.py), so
a repeated delivery is a no-op.
"""

from __future__ import annotations

import logging

from aiohttp import web

from bot.conversation.intake import Messenger, WebhookIntake
from bot.max.client import MaxClient, MaxError
from bot.max.polling import Feed
from bot.max.updates import UPDATE_TYPES
from bot.settings import Settings, SettingsError
from bot.texts import cli
from bot.web.intake import refused, webhook_answer

log = logging.getLogger(__name__)
MAX = Messenger("MAX updates", "MAX", log)

MAX_WEBHOOK_PATH = "/max/webhook"
SECRET_HEADER = "X-Max-Bot-Api-Secret"
MAX_CONCURRENT_UPDATES = 8  # as bot/webhook.py: each holds a database connection
DRAIN_TIMEOUT_SECONDS = 20.0


def max_webhook_url(settings: Settings) -> str:
    return settings.public_base + MAX_WEBHOOK_PATH


async def subscribe(client: MaxClient, url: str, secret: str) -> None:
    """Point MAX at this service (the same URL again replaces its settings)."""
    try:
        await client.subscribe(url, secret, UPDATE_TYPES)
    except MaxError as error:
        if error.transient:
            raise
        detail = f"{error.status} {error.code}".strip()
        raise SettingsError([cli.MAX_WEBHOOK_REJECTED.format(url=url, error=detail)]) from None


async def unsubscribe_all(client: MaxClient) -> None:
    """Polling and a subscription exclude each other: polling removes the subscriptions."""
    for url in await client.subscriptions():
        await client.unsubscribe(url)
        log.info("MAX webhook subscription removed: polling")


class MaxWebhookReceiver:
    """The /max/webhook endpoint: each request is answered once its update is handled."""

    def __init__(self, feed: Feed, secret: str) -> None:
        self.feed = feed
        self.secret = secret
        self._intake = WebhookIntake(MAX_CONCURRENT_UPDATES, MAX)

    def mount(self, app: web.Application) -> None:
        app.router.add_post(MAX_WEBHOOK_PATH, self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        refusal = refused(
            request,
            SECRET_HEADER,
            self.secret,
            log,
            "MAX webhook request refused: wrong or missing secret",
        )
        if refusal is not None:
            return refusal
        try:
            update = await request.json()
        except ValueError:
            update = None
        if not isinstance(update, dict) or not isinstance(update.get("update_type"), str):
            log.warning("MAX webhook request refused: not a MAX update")
            return web.json_response({"error": "not a MAX update"}, status=400)
        receipt = await self._intake.receive(lambda: self.feed(update), name="max-update")
        return webhook_answer(receipt)

    @property
    def in_flight(self) -> int:
        return self._intake.in_flight

    async def idle(self) -> None:
        await self._intake.idle()

    async def stop(self, grace_seconds: float = DRAIN_TIMEOUT_SECONDS) -> None:
        """Take no more updates (503: MAX delivers them again); wait for those in progress up to
        `grace_seconds`; cancel the rest (rolled back, unanswered, delivered again)."""
        await self._intake.stop(grace_seconds)
