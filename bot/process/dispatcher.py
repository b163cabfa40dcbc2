"""The notification dispatcher as tasks of a process: the outbox worker (bot/telegram/sender.py
sends the Telegram outbox), the directors' daily digest (services/digest.py) and the expiry of
requests to move an account (services/linking.py); `python -m bot dispatcher` runs them alone,
with the retention job (services/retention.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.screens.screen import Screen
from bot.settings import Settings
from bot.telegram.bot import Bot
from bot.telegram.sender import build_notifier
from services.clock import Clock, SystemClock
from services.digest import digest_loop
from services.linking import move_requests_loop
from services.outbox import OutboxWorker
from services.retention import Retention

log = logging.getLogger(__name__)


@dataclass
class Background:
    """The dispatcher and its periodic jobs as tasks of a running process; `stop()` ends
    them all."""

    notifier: OutboxWorker[Screen]
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def stop(self) -> None:
        self.stopping.set()
        self.notifier.stop()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        log.info("notification dispatcher stopped")


def start_background(
    bot: Bot,
    session_factory: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: Clock,
) -> Background:
    """Start the dispatcher, the digest check and the expiry of move requests as tasks of the
    current event loop."""
    background = Background(build_notifier(bot, session_factory, settings, clock))
    background.tasks = [
        asyncio.create_task(background.notifier.run(), name="notifier"),
        asyncio.create_task(
            digest_loop(
                session_factory,
                clock,
                settings.zone,
                settings.DIGEST_TIME,
                background.stopping,
                on_written=background.notifier.wake,
            ),
            name="digest",
        ),
        asyncio.create_task(
            move_requests_loop(
                session_factory, clock, background.stopping, on_written=background.notifier.wake
            ),
            name="move_requests",
        ),
    ]
    log.info(
        "notification dispatcher started: %.0f messages/s, digest at %s %s",
        settings.NOTIFY_RATE,
        settings.DIGEST_TIME.strftime("%H:%M"),
        settings.TIMEZONE,
    )
    return background


async def run_dispatcher(settings: Settings) -> None:
    """`python -m bot dispatcher`: only the dispatcher, the digest and the retention job, until
    SIGTERM/SIGINT."""
    from bot.telegram.bot import build_bot
    from storage.db import create_engine, create_session_factory
    from storage.migrate import upgrade

    engine = create_engine(settings.DATABASE_URL)
    await upgrade(engine)
    bot = build_bot(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    session_factory = create_session_factory(engine)
    background = start_background(bot, session_factory, settings, SystemClock())
    retention = Retention.start(session_factory, SystemClock(), settings.outbox_retention)
    try:
        await stop.wait()
    finally:
        await retention.stop()
        await background.stop()
        await bot.session.close()
        await engine.dispose()
