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
import hmac
import logging
import signal
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import Update
from aiohttp import web
from pydantic import ValidationError

from bot.conversation.receipts import Receipt
from bot.settings import Settings, SettingsError
from bot.telegram.feed import feed
from bot.texts import cli

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Updates processed at once by one replica; more wait their turn (their requests stay open:
# Telegram keeps at most `max_connections` of them, 40 by default). Each holds a database
# connection while it runs: this leaves room in the engine's pool (5 + 10 overflow) for
# recording update ids, FSM reads, the API and the notification dispatcher.
MAX_CONCURRENT_UPDATES = 8
# How long a stopping replica waits for updates still being processed (below systemd's and
# Docker's default grace period before SIGKILL).
DRAIN_TIMEOUT_SECONDS = 20.0


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


class WebhookReceiver:
    """The /telegram/webhook endpoint: each request is answered once its update is handled."""

    def __init__(self, bot: Bot, dp: Dispatcher, secret: str) -> None:
        self.bot = bot
        self.dp = dp
        self.secret = secret
        self._tasks: set[asyncio.Task[Receipt]] = set()
        self._stopping = False
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_UPDATES)

    def mount(self, app: web.Application) -> None:
        app.router.add_post(WEBHOOK_PATH, self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, self.secret.encode()):
            log.warning("webhook request refused: wrong or missing secret token")
            return web.json_response({"error": "unauthorized"}, status=401)
        try:
            update = Update.model_validate(await request.json(), context={"bot": self.bot})
        except (ValueError, ValidationError):  # JSONDecodeError is a ValueError
            log.warning("webhook request refused: not a Telegram update")
            return web.json_response({"error": "not a Telegram update"}, status=400)
        if self._stopping:
            # Telegram delivers it again: to another replica, or to this one after a restart.
            return web.json_response({"error": "stopping"}, status=503)
        task = asyncio.create_task(self._process(update), name=f"update-{update.update_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            # Shielded: a client that gives up does not cut the update's handling short.
            receipt = await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.cancelled():
                raise  # this request itself was cancelled (the server is going away)
            receipt = Receipt()  # cut off by a stop: rolled back, not acknowledged
        if receipt.acknowledged:
            return web.json_response({})
        return web.json_response({"error": "not handled, deliver again"}, status=503)

    async def _process(self, update: Update) -> Receipt:
        async with self._slots:
            return await feed(self.dp, self.bot, update)

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def idle(self) -> None:
        """Wait until every update taken in so far has been processed."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def stop(self, grace_seconds: float = DRAIN_TIMEOUT_SECONDS) -> None:
        """Take no more updates (they get 503 and come again); wait up to `grace_seconds` for
        those in progress; cancel the rest: rolled back and unanswered, Telegram delivers them
        again."""
        self._stopping = True
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace_seconds)
        if pending:
            log.warning(
                "%d updates still in progress after %.0f s; cancelled, Telegram delivers them "
                "again",
                len(pending),
                grace_seconds,
            )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


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
