"""Webhook mode (PUBLIC_URL and WEBHOOK_SECRET set): Telegram POSTs updates to
PUBLIC_URL + WEBHOOK_PATH, a fixed path on the same aiohttp server as /healthz.

The request handler only checks the secret token (in constant time), records the update_id in the
database and answers 200; the update is processed in a background task. Recording is an
insert-or-ignore on the update_id, so a repeated delivery (Telegram retries when our answer was
late, possibly to another replica) is acknowledged and skipped. Recorded ids are pruned after a
day by whichever replica holds the job lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import signal
from datetime import timedelta
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramBadRequest
from aiogram.methods import TelegramMethod
from aiogram.types import Update
from aiohttp import web
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.settings import Settings, SettingsError
from services.clock import Clock
from services.locks import job_lock
from storage.updates import prune_processed_updates, record_update

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# How long update ids are remembered: Telegram gives up redelivering long before.
PROCESSED_UPDATES_KEPT = timedelta(days=1)
PRUNE_INTERVAL_SECONDS = 3600.0
# Updates processed at once by one replica; more wait their turn. Each holds a database
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
        raise SettingsError(
            [
                "Ошибка настройки: PUBLIC_URL задана неверно — Telegram не принял адрес вебхука "
                f"{url}: {error.message}"
            ]
        ) from None


class WebhookReceiver:
    """The /telegram/webhook endpoint and the background tasks processing what it took in."""

    def __init__(
        self,
        bot: Bot,
        dp: Dispatcher,
        session_factory: async_sessionmaker[AsyncSession],
        secret: str,
        clock: Clock,
    ) -> None:
        self.bot = bot
        self.dp = dp
        self.session_factory = session_factory
        self.secret = secret
        self.clock = clock
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_UPDATES)
        self._pruning: asyncio.Task[None] | None = None

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
        try:
            first = await record_update(self.session_factory, update.update_id, self.clock.now())
        except SQLAlchemyError:
            log.exception(
                "could not record update %s; Telegram will redeliver it", update.update_id
            )
            return web.json_response({"error": "database unavailable"}, status=503)
        if not first:
            log.info("update %s was delivered before; skipped", update.update_id)
            return web.json_response({})
        task = asyncio.create_task(self._process(update), name=f"update-{update.update_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.json_response({})

    async def _process(self, update: Update) -> None:
        try:
            async with self._slots:
                result = await self.dp.feed_update(self.bot, update)
                if isinstance(result, TelegramMethod):
                    await self.dp.silent_call_request(self.bot, result)
        except Exception as error:  # the error router handles handler failures; this is the rest
            # Only the update id and the exception type: update contents may hold personal data.
            log.error(
                "update %s failed: %s", update.update_id, type(error).__name__, exc_info=error
            )

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    async def idle(self) -> None:
        """Wait until every update taken in so far has been processed."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def start(self) -> None:
        self._pruning = asyncio.create_task(self._prune_periodically(), name="prune-updates")

    async def stop(self, grace_seconds: float = DRAIN_TIMEOUT_SECONDS) -> None:
        """Stop pruning; wait up to `grace_seconds` for updates in progress, cancel the rest."""
        if self._pruning is not None:
            self._pruning.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruning
        if not self._tasks:
            return
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace_seconds)
        if pending:
            log.warning(
                "%d updates still in progress after %.0f s; cancelled", len(pending), grace_seconds
            )
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def prune(self) -> int:
        """Forget old update ids (in one replica at a time); returns how many were forgotten."""
        lock = job_lock(self.session_factory, "prune-processed-updates", clock=self.clock)
        async with lock as acquired:
            if not acquired:
                return 0
            before = self.clock.now() - PROCESSED_UPDATES_KEPT
            return await prune_processed_updates(self.session_factory, before)

    async def _prune_periodically(self) -> None:
        while True:
            try:
                pruned = await self.prune()
                if pruned:
                    log.info("forgot %d processed update ids", pruned)
            except SQLAlchemyError:
                log.exception("pruning processed update ids failed; retrying later")
            await asyncio.sleep(PRUNE_INTERVAL_SECONDS)


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


async def serve_webhook(
    bot: Bot, dp: Dispatcher, receiver: WebhookReceiver, runner: web.AppRunner, url: str
) -> None:
    """Webhook mode until a stop signal; the web server (`runner`) is already listening.

    Stopping: no new requests, then the updates in progress finish, then the Dispatcher's
    shutdown (closes the FSM storage). The webhook itself stays set: other replicas go on.
    """
    workflow_data: dict[str, Any] = {"dispatcher": dp, "bots": [bot], **dp.workflow_data}
    await dp.emit_startup(bot=bot, **workflow_data)
    try:
        await set_webhook(bot, dp, url, receiver.secret)
        receiver.start()
        log.info("webhook set: updates arrive at %s", url)
        await wait_for_stop_signal()
    finally:
        await runner.cleanup()
        await receiver.stop()
        await dp.emit_shutdown(bot=bot, **workflow_data)
