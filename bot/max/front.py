"""The MAX front end as the process runs it (bot/app.py): the client, the bot's identity
(GET /me) and its command list (PATCH /me/commands), updates by long polling or, with PUBLIC_URL
and MAX_WEBHOOK_SECRET, by webhook."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from aiohttp import web

from bot.conversation.runner import Runner
from bot.max.client import MaxClient, MaxError, Me
from bot.max.feed import Attempts, MaxFeed
from bot.max.polling import MaxPoller
from bot.max.updates import MESSENGER
from bot.max.webhook import MaxWebhookReceiver, max_webhook_url, subscribe, unsubscribe_all
from bot.settings import Settings, SettingsError
from bot.texts import cli
from bot.texts import linking as link_texts
from bot.texts.messengers import say
from storage.poll_markers import PollMarkers

log = logging.getLogger(__name__)

ME_ATTEMPTS = 5


def build_client(settings: Settings) -> MaxClient:
    assert settings.MAX_BOT_TOKEN is not None
    return MaxClient(settings.MAX_BOT_TOKEN.get_secret_value(), settings.max_api_base)


async def fetch_me(client: MaxClient, attempts: int = ME_ATTEMPTS) -> Me:
    """GET /me with a few retries on network trouble; a rejected token is a settings error."""
    delay = 1.0
    for attempt in range(1, attempts + 1):
        try:
            return await client.me()
        except MaxError as error:
            if error.status == 401:
                raise SettingsError([cli.MAX_BOT_TOKEN_REJECTED]) from None
            if not error.transient or attempt == attempts:
                raise
            log.warning("MAX Bot API unavailable (%s), retrying in %.0f s", error.status, delay)
            await asyncio.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def bot_commands() -> list[tuple[str, str]]:
    """The commands MAX lists for the bot in every dialog (one list: not per role, as Telegram's
    per-chat menu is), «/menu» first."""
    return [
        ("menu", link_texts.COMMAND_MENU_ANY_ROLE),
        ("profile", link_texts.COMMAND_PROFILE),
        ("help", link_texts.COMMAND_HELP),
        ("logout", say(link_texts.COMMAND_LOGOUT, MESSENGER)),
    ]


async def set_commands(client: MaxClient) -> None:
    """The bot's command list; a failure leaves the previous one, no reason not to start."""
    try:
        await client.set_commands(bot_commands())
    except MaxError as error:
        log.warning("could not set the MAX bot's commands: %s", error.status)


@dataclass
class MaxFront:
    settings: Settings
    runner: Runner
    client: MaxClient
    me: Me | None = None
    receiver: MaxWebhookReceiver | None = None
    poller: MaxPoller | None = None
    state: dict[str, object] = field(default_factory=dict)

    @property
    def mode(self) -> str:
        return "webhook" if self.settings.max_webhook_mode else "polling"

    @property
    def feed(self) -> MaxFeed:
        assert self.me is not None, "start() first"
        return MaxFeed(self.runner, self.client, self.me.user_id)

    async def start(self) -> Me:
        """Who the bot is in MAX; in webhook mode, the receiver (mount it before serving)."""
        self.me = await fetch_me(self.client)
        await set_commands(self.client)
        if self.settings.max_webhook_mode:
            assert self.settings.MAX_WEBHOOK_SECRET is not None
            secret = self.settings.MAX_WEBHOOK_SECRET.get_secret_value()
            self.receiver = MaxWebhookReceiver(self.feed, secret, Attempts(self.feed.give_up))
        else:
            feed = self.feed
            markers = PollMarkers(self.runner.session_factory, MESSENGER, self.me.user_id)
            self.poller = MaxPoller(
                self.client,
                feed,
                attempts=Attempts(feed.give_up),
                markers=markers,
                clock=self.runner.clock,
            )
        return self.me

    def mount(self, app: web.Application) -> None:
        if self.receiver is not None:
            self.receiver.mount(app)

    async def serve(self, stop: asyncio.Event) -> None:
        """Until `stop`: subscribed and receiving, or polling; then the drain."""
        self.state["max"] = self.mode
        if self.receiver is not None:
            url = max_webhook_url(self.settings)
            await subscribe(self.client, url, self.receiver.secret)
            log.info("MAX webhook subscribed: updates arrive at %s", url)
            try:
                await stop.wait()
            finally:
                await self.receiver.stop()
            return
        assert self.poller is not None
        await unsubscribe_all(self.client)
        polling = asyncio.create_task(self.poller.run(), name="max-polling")
        stopping = asyncio.create_task(stop.wait(), name="max-stop")
        await asyncio.wait({polling, stopping}, return_when=asyncio.FIRST_COMPLETED)
        self.poller.stop()
        stopping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopping
        await polling  # drains; re-raises if polling itself failed
