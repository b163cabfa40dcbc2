"""MAX webhook mode (PUBLIC_URL and MAX_WEBHOOK_SECRET set): MAX POSTs updates to
PUBLIC_URL + MAX_WEBHOOK_PATH, on the same aiohttp server as /healthz; bot/telegram/webhook.py's
design, on the same intake (bot/conversation/intake.py, bot/web/intake.py).

The bot subscribes with `POST /subscriptions` (the URL, the secret, the update types it
handles). Every request must carry the secret in `X-Max-Bot-Api-Secret` (compared in constant
time): anything else is refused with 401. An update is answered 200 only once it is handled
(committed with the record of its identity, handled before, or failed and recorded), and so is
an authenticated request that is not a readable update (ignored: delivered again it would never
read; only its identity or type is logged, never its contents), and an update whose handling
failed MAX_ATTEMPTS times (recorded as failed: bot/max/feed.py `Attempts`). Anything else
(stopping, the database unavailable, the process killed) leaves MAX without a 200 and MAX
delivers it again (every 30-60 s, for up to 8 hours, then it unsubscribes the bot). MAX updates
carry no update id: the record is kept under the event's own identity (bot/max/updates.py), so
a repeated delivery is a no-op.
"""

from __future__ import annotations

import logging

from bot.conversation.intake import DRAIN_TIMEOUT_SECONDS, MAX_CONCURRENT_UPDATES, Messenger
from bot.conversation.receipts import Handling, Receipt
from bot.max.client import MaxClient, MaxError
from bot.max.feed import Attempts, Feed
from bot.max.polling import identity_of
from bot.max.updates import UPDATE_TYPES
from bot.settings import Settings, SettingsError
from bot.texts import cli
from bot.web.intake import Handling as Taken
from bot.web.intake import WebhookEndpoint

log = logging.getLogger(__name__)
MAX = Messenger("MAX updates", "MAX", log)

MAX_WEBHOOK_PATH = "/max/webhook"
SECRET_HEADER = "X-Max-Bot-Api-Secret"


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


class MaxWebhookReceiver(WebhookEndpoint):
    """The /max/webhook endpoint: each request is answered once its update is handled."""

    path = MAX_WEBHOOK_PATH
    header = SECRET_HEADER

    def __init__(self, feed: Feed, secret: str, attempts: Attempts | None = None) -> None:
        super().__init__(secret, MAX, MAX_CONCURRENT_UPDATES, DRAIN_TIMEOUT_SECONDS)
        self.feed = feed
        self.attempts = attempts or Attempts()

    def take(self, raw: object) -> Taken | None:
        """Every authenticated request is taken: one that is not a readable update is ignored
        and answered 200 (MAX would deliver it again for 8 hours, and it would never read);
        one whose handling failed `attempts` times is recorded as failed and answered 200."""
        if not isinstance(raw, dict) or not isinstance(raw.get("update_type"), str):
            log.warning("MAX webhook request is not a readable update; ignored")
            return unreadable, "max-update"
        identity = identity_of(raw)
        return (lambda: self.attempts.handle(self.feed, identity, raw)), "max-update"


async def unreadable() -> Receipt:
    return Receipt(Handling.IGNORED)
