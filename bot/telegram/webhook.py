"""Webhook mode (PUBLIC_URL and WEBHOOK_SECRET set): Telegram POSTs updates to
PUBLIC_URL + WEBHOOK_PATH, a fixed path on the same aiohttp server as /healthz.

The request handler checks the secret token (in constant time) and handles the update before it
answers: 200 only once the update's transaction committed (with the record that it was handled,
storage/updates.py), or it was handled before, or it failed and that was recorded. Anything
else (the process is stopping, the database is unavailable, the process is killed) leaves
Telegram without a 200, and Telegram delivers the update again, to this replica or another; the
record makes a repeated delivery a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import Update
from aiohttp import web
from pydantic import ValidationError

from bot.conversation.intake import DRAIN_TIMEOUT_SECONDS, MAX_CONCURRENT_UPDATES, Messenger
from bot.settings import Settings, SettingsError
from bot.telegram.feed import feed
from bot.texts import cli
from bot.web.intake import Handling, WebhookEndpoint

log = logging.getLogger(__name__)
TELEGRAM = Messenger("updates", "Telegram", log)

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def webhook_url(settings: Settings) -> str:
    assert settings.PUBLIC_URL is not None
    return settings.public_base + WEBHOOK_PATH


async def set_webhook(bot: Bot, dp: Dispatcher, url: str, secret: str) -> None:
    """Point Telegram at this service; pending updates are kept (nothing is lost on a deploy)."""
    try:
        await bot.set_webhook(
            url=url,
            secret_token=secret,
            allowed_updates=dp.resolve_used_update_types(),
            drop_pending_updates=False,
        )
    except TelegramBadRequest as error:
        raise SettingsError([cli.WEBHOOK_REJECTED.format(url=url, error=error.message)]) from None


class WebhookReceiver(WebhookEndpoint):
    """The /telegram/webhook endpoint: each request is answered once its update is handled
    (stopping: Telegram delivers it again, to another replica or to this one after a restart)."""

    path = WEBHOOK_PATH
    header = SECRET_HEADER

    def __init__(self, bot: Bot, dp: Dispatcher, secret: str) -> None:
        super().__init__(secret, TELEGRAM, MAX_CONCURRENT_UPDATES, DRAIN_TIMEOUT_SECONDS)
        self.bot = bot
        self.dp = dp

    def take(self, raw: object) -> Handling | None:
        try:
            update = Update.model_validate(raw, context={"bot": self.bot})
        except ValidationError:
            return None
        return (lambda: feed(self.dp, self.bot, update)), f"update-{update.update_id}"


async def wait_for_stop_signal() -> None:
    """Return on SIGTERM or SIGINT (what start_polling does in polling mode)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for number in signals:
        loop.add_signal_handler(number, stop.set)
    try:
        await stop.wait()
    finally:
        for number in signals:
            loop.remove_signal_handler(number)


async def until_stopped(stop: asyncio.Event | None) -> None:
    """Return when `stop` is set; without one, on SIGTERM or SIGINT."""
    if stop is None:
        await wait_for_stop_signal()
    else:
        await stop.wait()


async def serve_webhook(
    bot: Bot,
    dp: Dispatcher,
    receiver: WebhookReceiver,
    runner: web.AppRunner,
    url: str,
    stop: asyncio.Event | None = None,
) -> None:
    """Webhook mode until a stop signal; the web server (`runner`) is already listening.

    `stop`: the process's stop (both messengers served), else a signal. Stopping: new updates
    get 503 (Telegram delivers them again), the updates in progress
    finish (or, after the grace period, are cut off unanswered), then the web server and the
    Dispatcher's shutdown (closes the FSM storage). The webhook itself stays set: other
    replicas go on.
    """
    workflow_data: dict[str, Any] = {"dispatcher": dp, "bots": [bot], **dp.workflow_data}
    await dp.emit_startup(bot=bot, **workflow_data)
    try:
        await set_webhook(bot, dp, url, receiver.secret)
        log.info("webhook set: updates arrive at %s", url)
        await until_stopped(stop)
    finally:
        await receiver.stop()
        await runner.cleanup()
        await dp.emit_shutdown(bot=bot, **workflow_data)
