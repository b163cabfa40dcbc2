"""The Telegram bot and its Dispatcher, built for a process (bot/process/app.py wires them):
the Bot API session with its middlewares, the bot's commands, getMe at start-up, the announcement
of a bot-first sign-in and the chat messages of the sign-in pages."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.base import BaseSession
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramNetworkError,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import BotCommand, User
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import texts
from bot.conversation.effects import Reply
from bot.conversation.runner import Runner
from bot.conversation.stores import build_runner
from bot.settings import Settings, SettingsError
from bot.telegram.effects import TelegramExecutor
from bot.telegram.flood import FloodWait
from bot.texts import cli
from bot.web.metrics import Metrics, UpdateMetricsMiddleware
from handlers import telegram as telegram_handlers
from services.clock import Clock, SystemClock

__all__ = [
    "DEFAULT_COMMANDS",
    "Bot",
    "BotApiUnreachable",
    "Dispatcher",
    "KeepResponseModels",
    "announce_to",
    "build_bot",
    "build_dispatcher",
    "chat_teller",
    "fetch_me",
    "fetch_username",
    "track_updates",
]

log = logging.getLogger(__name__)


DEFAULT_COMMANDS = [
    BotCommand(command="start", description=texts.COMMAND_START),
    BotCommand(command="help", description=texts.COMMAND_HELP),
]


class KeepResponseModels(BaseRequestMiddleware):
    """Keeps the models aiogram parses Bot API answers with alive for the process's lifetime.

    aiogram validates every answer with the generic model `Response[<result type>]`, and pydantic
    keeps parametrised generic models only in a weak cache: once the garbage collector has
    dropped one (soon, in a busy process), the next answer builds it anew, a few milliseconds
    per call (bench/updates.py measured a third of an update's time). One strong reference per
    method class keeps the cache hit.
    """

    def __init__(self) -> None:
        self._models: dict[type[TelegramMethod[Any]], object] = {}

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        kind = type(method)
        if kind not in self._models:
            self._models[kind] = Response[kind.__returning__]  # type: ignore[name-defined]
        return await make_request(bot, method)


def build_bot(settings: Settings, session: BaseSession | None = None) -> Bot:
    """The bot, talking to TELEGRAM_API_URL (or through `session`, e.g. an in-process one);
    a reply that meets Telegram's flood control waits it out (bot/telegram/flood.py)."""
    assert settings.BOT_TOKEN is not None
    if session is None:
        session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_base))
    session.middleware(FloodWait())
    session.middleware(KeepResponseModels())
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
    runner: Runner | None = None,
) -> Dispatcher:
    """The Dispatcher of the Telegram front end, with shared objects in its workflow data (no
    globals). Its one router (handlers/telegram.py) translates updates for the `runner`, which
    handles each exactly once; aiogram's FSM is not used (`disable_fsm`): the conversation
    keeps its own state."""
    metrics = metrics or Metrics()
    clock = clock or SystemClock()
    dp = Dispatcher(
        disable_fsm=True,
        settings=settings,
        clock=clock,
        session_factory=session_factory,
        metrics=metrics,
        runner=runner or build_runner(settings, session_factory, clock),
    )
    dp.update.outer_middleware(UpdateMetricsMiddleware(metrics))  # outermost: times it all
    dp.include_router(telegram_handlers.build_router())
    return dp


def announce_to(bot: Bot) -> Callable[[int, Reply], Awaitable[None]]:
    """How the bot-first sign-in page tells the chat it is linked (the reply built before its
    commit, sent after it with no transaction open); a chat the Bot API cannot reach is
    logged: the account is bound all the same."""

    async def announce(chat_id: int, reply: Reply) -> None:
        try:
            await TelegramExecutor(bot, chat_id).execute(reply.effects)
        except TelegramAPIError as error:
            log.warning("could not tell chat %s it is linked: %s", chat_id, type(error).__name__)

    return announce


def chat_teller(bot: Bot) -> Callable[[int, str], Awaitable[None]]:
    """How the sign-in pages send a chat a message; a failure is logged, the page goes on."""

    async def tell(chat_id: int, text: str) -> None:
        try:
            await bot.send_message(chat_id, text)
        except TelegramAPIError as error:
            log.warning("could not tell chat %s: %s", chat_id, type(error).__name__)

    return tell


class BotApiUnreachable(Exception):
    """The Bot API did not answer getMe (network trouble or its server's error)."""


async def fetch_username(settings: Settings) -> str | None:
    """The bot's username, for the command line's links: getMe with a bot of its own, closed
    after; BotApiUnreachable when the Bot API does not answer."""
    bot = build_bot(settings)
    try:
        me = await fetch_me(bot)
    except (TelegramNetworkError, TelegramServerError) as error:
        raise BotApiUnreachable(str(error)) from error
    finally:
        await bot.session.close()
    return me.username


async def fetch_me(bot: Bot, attempts: int = 5) -> User:
    """getMe with a few retries on network trouble; a rejected token is a settings error."""
    delay = 1.0
    for attempt in range(1, attempts + 1):
        try:
            return await bot.get_me()
        except TelegramUnauthorizedError:
            raise SettingsError([cli.BOT_TOKEN_REJECTED]) from None
        except (TelegramNetworkError, TelegramServerError) as error:
            if attempt == attempts:
                raise
            log.warning("Bot API unavailable (%s), retrying in %.0f s", error, delay)
            await asyncio.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def track_updates(dp: Dispatcher, state: dict[str, object]) -> None:
    """Keep `state[state["mode"]]` (`polling` or `webhook`, shown by /healthz) in step with the
    dispatcher: running from its startup to its shutdown."""
    mode = str(state["mode"])

    async def started() -> None:
        state[mode] = "running"

    async def stopped() -> None:
        state[mode] = "stopped"

    dp.startup.register(started)
    dp.shutdown.register(stopped)
