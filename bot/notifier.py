"""The notification dispatcher: sends the Telegram outbox within Telegram's limits (and the
MAX outbox within MAX's: bot/max/sender.py).

A background task of the bot process (`python -m bot`), or a process of its own
(`python -m bot dispatcher`); several may share one database. Overall at most NOTIFY_RATE
messages a second, at most one a second per chat, in order per chat (services/outbox.py does
the claiming, pacing and bookkeeping). What Telegram answers decides what happens to a row:

* 429 -> that chat waits retry_after (at most MAX_RETRY_AFTER, 10 minutes); only when 429s come
  for several chats at once (FLOOD_KEYS chats within FLOOD_WINDOW seconds: Telegram's overall
  limit, not a chat's) does every send wait and the rate drop by a fifth, recovering gradually;
* network errors, timeouts, 5xx -> retried with exponential backoff and jitter, failed with the
  reason after the limit;
* 403 (bot blocked, user deactivated) and 400 «chat not found» -> the link is marked blocked and
  the chat's rows are held until the user writes to the bot again;
* any other 4xx -> failed with Telegram's description (a retry would get the same answer).

The same process writes the directors' daily digest to the outbox (services/digest.py) and
closes requests to move an account that its owner left unanswered (services/linking.py); the
dispatcher command runs the retention job too (services/retention.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass, field

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.flood import flood_errors_raised
from bot.max.client import MaxClient
from bot.max.sender import PER_CHAT_INTERVAL as MAX_PER_CHAT_INTERVAL
from bot.max.sender import MaxSender
from bot.pushes import PushContext, render
from bot.screens.screen import Screen
from bot.settings import Settings
from bot.telegram.render import keyboard
from services.clock import Clock, SystemClock
from services.digest import digest_loop
from services.linking import move_requests_loop
from services.outbox import (
    TELEGRAM,
    Blocked,
    Failed,
    OutboxWorker,
    Outcome,
    Retry,
    RetryAfter,
    RetryPolicy,
    Sent,
    capped_retry_after,
)
from services.retention import Retention
from storage.models import OutboxMessage
from storage.repositories import Repositories

log = logging.getLogger(__name__)

PER_CHAT_INTERVAL = 1.0  # seconds between two messages to one chat
SEND_TIMEOUT = 15.0  # seconds; an unanswered send is retried (and may arrive twice)
UNAUTHORIZED_PAUSE = 60.0  # seconds to wait when Telegram rejects the token
CHAT_GONE = ("chat not found", "user is deactivated", "bot was blocked", "bot was kicked")


class TelegramSender:
    """Renders a row at send time and sends it with the bot, classifying Telegram's answer."""

    def __init__(self, bot: Bot, settings: Settings, send_timeout: float = SEND_TIMEOUT) -> None:
        self.bot = bot
        self.settings = settings
        self.send_timeout = send_timeout

    async def prepare(self, repo: Repositories, row: OutboxMessage) -> Screen:
        return await render(PushContext(repo, row, self.settings))

    async def send(self, row: OutboxMessage, prepared: Screen) -> Outcome:
        if row.chat_id is None:
            return Failed("the row names no chat")
        try:
            # The 429 comes back at once: the worker decides whom it holds back.
            with flood_errors_raised():
                async with asyncio.timeout(self.send_timeout):
                    message = await self.bot.send_message(
                        row.chat_id, prepared.text, reply_markup=keyboard(prepared)
                    )
        except TelegramRetryAfter as error:
            seconds = capped_retry_after(error.retry_after)
            return RetryAfter(seconds, f"429: Too Many Requests: retry after {error.retry_after}")
        except TelegramForbiddenError as error:
            return Blocked(f"403: {error.message}")
        except TelegramBadRequest as error:
            if any(reason in error.message.lower() for reason in CHAT_GONE):
                return Blocked(f"400: {error.message}")
            return Failed(f"400: {error.message}")
        except TelegramUnauthorizedError:
            log.error("Telegram rejected BOT_TOKEN; notifications wait")
            return RetryAfter(UNAUTHORIZED_PAUSE, "401: the bot token was rejected", overall=True)
        except TelegramServerError as error:
            return Retry(f"5xx: {error.message}")
        except TelegramNetworkError as error:
            return Retry(f"network: {error.message}")
        except TimeoutError:
            return Retry("network: request timeout")
        except TelegramAPIError as error:
            return Failed(f"{type(error).__name__}: {error.message}")
        return Sent(message.message_id)


def build_notifier(
    bot: Bot,
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: Clock,
    *,
    send_timeout: float = SEND_TIMEOUT,
    policy: RetryPolicy | None = None,
    poll_interval: float = 1.0,
) -> OutboxWorker[Screen]:
    return OutboxWorker(
        session_factory,
        TelegramSender(bot, settings, send_timeout),
        channel=TELEGRAM,
        clock=clock,
        rate=settings.NOTIFY_RATE,
        per_chat_interval=PER_CHAT_INTERVAL,
        lease=float(settings.NOTIFY_LEASE),
        policy=policy,
        poll_interval=poll_interval,
    )


MAX_CHANNEL = "max"


def build_max_notifier(
    client: MaxClient,
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: Clock,
    *,
    send_timeout: float = SEND_TIMEOUT,
    policy: RetryPolicy | None = None,
    poll_interval: float = 1.0,
) -> OutboxWorker[Screen]:
    """The MAX outbox's dispatcher: MAX_NOTIFY_RATE overall, 2 messages a second per dialog."""
    return OutboxWorker(
        session_factory,
        MaxSender(client, settings, send_timeout),
        channel=MAX_CHANNEL,
        clock=clock,
        rate=settings.MAX_NOTIFY_RATE,
        per_chat_interval=MAX_PER_CHAT_INTERVAL,
        lease=float(settings.NOTIFY_LEASE),
        policy=policy,
        poll_interval=poll_interval,
    )


@dataclass
class Background:
    """The dispatchers (one per messenger served) and the periodic jobs as tasks of a running
    process; `stop()` ends them all."""

    notifiers: list[OutboxWorker[Screen]]
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def notifier(self) -> OutboxWorker[Screen]:
        """The first dispatcher (Telegram's when Telegram is served)."""
        return self.notifiers[0]

    def wake(self) -> None:
        for notifier in self.notifiers:
            notifier.wake()

    async def stop(self) -> None:
        self.stopping.set()
        for notifier in self.notifiers:
            notifier.stop()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        log.info("notification dispatcher stopped")


def start_background(
    bot: Bot | None,
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: Clock,
    max_client: MaxClient | None = None,
) -> Background:
    """Start the dispatchers (Telegram's with `bot`, MAX's with `max_client`), the digest check
    and the expiry of move requests as tasks of the current event loop."""
    notifiers = []
    if bot is not None:
        notifiers.append(build_notifier(bot, session_factory, settings, clock))
    if max_client is not None:
        notifiers.append(build_max_notifier(max_client, session_factory, settings, clock))
    background = Background(notifiers)
    names = {TELEGRAM: "notifier", MAX_CHANNEL: "max_notifier"}
    background.tasks = [
        *(asyncio.create_task(n.run(), name=names[n.channel]) for n in notifiers),
        asyncio.create_task(
            digest_loop(
                session_factory,
                clock,
                settings.zone,
                settings.DIGEST_TIME,
                background.stopping,
                on_written=background.wake,
            ),
            name="digest",
        ),
        asyncio.create_task(
            move_requests_loop(
                session_factory, clock, background.stopping, on_written=background.wake
            ),
            name="move_requests",
        ),
    ]
    log.info(
        "notification dispatcher started for %s: %.0f messages/s, digest at %s %s",
        ", ".join(n.channel for n in notifiers),
        settings.NOTIFY_RATE,
        settings.DIGEST_TIME.strftime("%H:%M"),
        settings.TIMEZONE,
    )
    return background


async def run_dispatcher(settings: Settings) -> None:
    """`python -m bot dispatcher`: only the dispatcher, the digest and the retention job, until
    SIGTERM/SIGINT."""
    from bot.app import build_bot
    from bot.max.front import build_client
    from storage.db import create_engine, create_session_factory
    from storage.migrate import upgrade

    engine = create_engine(settings.DATABASE_URL)
    await upgrade(engine)
    bot = build_bot(settings) if settings.BOT_TOKEN is not None else None
    max_client = build_client(settings) if settings.MAX_BOT_TOKEN is not None else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    session_factory = create_session_factory(engine)
    background = start_background(bot, session_factory, settings, SystemClock(), max_client)
    retention = Retention.start(session_factory, SystemClock(), settings.outbox_retention)
    try:
        await stop.wait()
    finally:
        await retention.stop()
        await background.stop()
        if bot is not None:
            await bot.session.close()
        if max_client is not None:
            await max_client.close()
        await engine.dispose()
