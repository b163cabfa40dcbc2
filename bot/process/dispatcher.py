"""The notification dispatcher as tasks of a process: the outbox workers (bot/telegram/sender.py
sends the Telegram outbox, bot/max/sender.py the MAX one), the directors' daily digest
(services/digest.py) and the expiry of requests to move an account (services/linking.py);
`python -m bot dispatcher` runs them alone, with the retention job (services/retention.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.max.client import MaxClient
from bot.max.sender import MAX_CHANNEL, MaxSender
from bot.process.stopping import close_connections, stop_signals, within
from bot.screens.screen import Screen
from bot.settings import Settings
from bot.telegram.bot import Bot
from bot.telegram.sender import TelegramSender
from services.clock import Clock, SystemClock
from services.digest import digest_loop
from services.linking import move_requests_loop
from services.outbox import TELEGRAM, OutboxWorker
from services.retention import Retention

log = logging.getLogger(__name__)


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
        notifiers.append(TelegramSender(bot, settings).worker(session_factory, clock))
    if max_client is not None:
        notifiers.append(MaxSender(max_client, settings).worker(session_factory, clock))
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
    from bot.max.front import build_client
    from bot.telegram.bot import build_bot
    from storage.db import create_engine, create_session_factory
    from storage.migrate import upgrade

    engine = create_engine(settings.DATABASE_URL)
    await upgrade(engine)
    bot = build_bot(settings) if settings.BOT_TOKEN is not None else None
    max_client = build_client(settings) if settings.MAX_BOT_TOKEN is not None else None
    with stop_signals() as stop:
        session_factory = create_session_factory(engine)
        background = start_background(bot, session_factory, settings, SystemClock(), max_client)
        retention = Retention.start(session_factory, SystemClock(), settings.outbox_retention)
        try:
            await stop.wait()
        finally:  # each part bounded (bot/process/stopping.py): none can hold up the stop
            await within("the retention job", retention.stop())
            await within("the notification dispatcher", background.stop())
            await close_connections(bot.session if bot is not None else None, max_client, engine)
