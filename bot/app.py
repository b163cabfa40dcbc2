"""The app factory: bot, dispatcher, web server; and the process that runs them together."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramNetworkError, TelegramServerError, TelegramUnauthorizedError
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.types import BotCommand, User
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot import texts
from bot.api import ApiContext
from bot.metrics import Metrics, UpdateMetricsMiddleware
from bot.middlewares import (
    AbandonInputMiddleware,
    ActorMiddleware,
    DbSessionMiddleware,
    UserEventIsolation,
)
from bot.oidc import LinkPages, provider_from
from bot.settings import Settings, SettingsError
from bot.states import AppInput
from bot.web import Liveness, build_web_app, make_runner
from handlers import build_router
from handlers.linking import announce_link
from services.clock import Clock, SystemClock
from storage.db import create_engine, create_session_factory
from storage.migrate import upgrade

log = logging.getLogger(__name__)

DEFAULT_COMMANDS = [
    BotCommand(command="start", description=texts.COMMAND_START),
    BotCommand(command="help", description=texts.COMMAND_HELP),
]


def build_bot(settings: Settings) -> Bot:
    assert settings.BOT_TOKEN is not None
    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_base))
    return Bot(
        settings.BOT_TOKEN.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


def build_dispatcher(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    clock: Clock | None = None,
    metrics: Metrics | None = None,
) -> Dispatcher:
    """The Dispatcher with shared objects in its workflow data (no globals).

    Updates of one user are handled one at a time (events isolation), each in one transaction.
    """
    metrics = metrics or Metrics()
    dp = Dispatcher(
        storage=MemoryStorage(),
        events_isolation=UserEventIsolation(),
        settings=settings,
        clock=clock or SystemClock(),
        session_factory=session_factory,
        metrics=metrics,
    )
    dp.update.outer_middleware(UpdateMetricsMiddleware(metrics))  # outermost: times it all
    dp.update.outer_middleware(DbSessionMiddleware(session_factory))
    dp.update.outer_middleware(ActorMiddleware())
    dp.update.outer_middleware(AbandonInputMiddleware(AppInput))
    dp.include_router(build_router())
    return dp


def link_pages(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    bot: Bot,
    clock: Clock,
    bot_username: str,
) -> LinkPages:
    """The bot-first sign-in pages (GET /link/{token} and the OIDC callback)."""
    return LinkPages(
        settings=settings,
        session_factory=session_factory,
        bot=bot,
        clock=clock,
        bot_username=bot_username,
        announce=announce_link,
        provider=provider_from(settings),
    )


@dataclass
class Runtime:
    """What the running process holds, for start-up and a clean stop."""

    settings: Settings
    engine: AsyncEngine
    bot: Bot
    dp: Dispatcher
    state: dict[str, object] = field(default_factory=dict)


async def fetch_me(bot: Bot, attempts: int = 5) -> User:
    """getMe with a few retries on network trouble; a rejected token is a settings error."""
    delay = 1.0
    for attempt in range(1, attempts + 1):
        try:
            return await bot.get_me()
        except TelegramUnauthorizedError:
            raise SettingsError(
                [
                    "Ошибка настройки: BOT_TOKEN отклонён сервером Telegram — проверьте токен "
                    "у @BotFather"
                ]
            ) from None
        except (TelegramNetworkError, TelegramServerError) as error:
            if attempt == attempts:
                raise
            log.warning("Bot API unavailable (%s), retrying in %.0f s", error, delay)
            await asyncio.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def track_polling(dp: Dispatcher, state: dict[str, object]) -> None:
    """Keep `state["polling"]` (shown by /healthz) in step with the dispatcher's polling."""

    async def started() -> None:
        state["polling"] = "running"

    async def stopped() -> None:
        state["polling"] = "stopped"

    dp.startup.register(started)
    dp.shutdown.register(stopped)


async def run(settings: Settings) -> None:
    """Run the bot (long polling) and the web server until SIGTERM or SIGINT."""
    engine = create_engine(settings.DATABASE_URL)
    await upgrade(engine)
    bot = build_bot(settings)
    clock = SystemClock()
    metrics = Metrics()
    session_factory = create_session_factory(engine)
    dp = build_dispatcher(settings, session_factory, clock, metrics)
    runtime = Runtime(settings, engine, bot, dp, state={"mode": "polling", "polling": "starting"})
    track_polling(dp, runtime.state)
    liveness = Liveness()
    runner: web.AppRunner | None = None
    try:
        me = await fetch_me(bot)
        assert me.username is not None
        dp["bot_username"] = me.username
        await bot.set_my_commands(DEFAULT_COMMANDS)
        api = ApiContext(settings, session_factory, clock, me.username, metrics)
        web_app = build_web_app(
            engine, runtime.state, api=api, metrics=metrics, liveness=liveness, clock=clock
        )
        link_pages(settings, session_factory, bot, clock, me.username).register(web_app)
        runner = make_runner(web_app)
        await runner.setup()
        site = web.TCPSite(runner, settings.WEB_HOST, settings.WEB_PORT)
        await site.start()
        log.info(
            "bot @%s started: long polling, web server on %s:%s",
            me.username,
            settings.WEB_HOST,
            settings.WEB_PORT,
        )
        await bot.delete_webhook(drop_pending_updates=False)
        await dp.start_polling(
            bot,
            handle_signals=True,
            close_bot_session=False,
            allowed_updates=dp.resolve_used_update_types(),
        )
    finally:
        if runner is not None:
            await runner.cleanup()
        await bot.session.close()
        await engine.dispose()
        log.info("stopped")
