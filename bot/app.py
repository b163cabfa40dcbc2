"""The app factory: bot, dispatcher, web server; and the process that runs them together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
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
from aiogram.exceptions import TelegramNetworkError, TelegramServerError, TelegramUnauthorizedError
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import BotCommand, User
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot import texts
from bot.api import ApiContext
from bot.api.core import ForgetConversation
from bot.conversation.linking import announcement
from bot.conversation.locks import RedisLocks
from bot.conversation.runner import Runner
from bot.decisions_webhook import DecisionsWebhook
from bot.flood import FloodWait
from bot.links import deep_links
from bot.metrics import Metrics, UpdateMetricsMiddleware
from bot.notifier import Background, start_background
from bot.oidc import LinkPages, provider_from, telegram_launch
from bot.polling import serve_polling
from bot.receipts import forget_handled_updates_periodically
from bot.settings import Settings, SettingsError
from bot.telegram.effects import TelegramExecutor
from bot.web import Liveness, build_web_app, make_runner
from bot.webhook import WebhookReceiver, serve_webhook, webhook_url
from handlers import telegram as telegram_handlers
from services.clock import Clock, SystemClock
from services.linking import Linked
from services.retention import Retention
from storage.db import create_engine, create_session_factory
from storage.migrate import upgrade
from storage.repositories import Repositories
from storage.states import RedisStates, StateKey

log = logging.getLogger(__name__)

REDIS_MAX_CONNECTIONS = 50
REDIS_POOL_TIMEOUT = 20.0  # seconds an update may wait for a Redis connection

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
    a reply that meets Telegram's flood control waits it out (bot/flood.py)."""
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


def build_runner(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    clock: Clock | None = None,
) -> Runner:
    """The conversation's runner: conversation state and the users' locks in Redis when
    REDIS_URL is set (shared by the replicas), else in the SQL database and in the process.

    The Redis client is imported only then: a process without Redis does not carry it (about
    7 MB of memory, bench/memory.py).
    """
    runner = Runner(session_factory, settings, clock or SystemClock())
    if settings.REDIS_URL:
        from redis.asyncio import BlockingConnectionPool, Redis

        # A burst of updates waits for a free connection instead of failing with "Too many
        # connections" (the default pool's behaviour at its limit).
        pool = BlockingConnectionPool.from_url(
            settings.REDIS_URL, max_connections=REDIS_MAX_CONNECTIONS, timeout=REDIS_POOL_TIMEOUT
        )
        redis = Redis(connection_pool=pool)
        runner.states = RedisStates(redis)
        runner.locks = RedisLocks(redis)
        runner.closing.append(redis.aclose)
    return runner


def conversation_eraser(
    runner: Runner, bot_id: int, bot_ids: dict[str, int] | None = None
) -> ForgetConversation | None:
    """What forgets a messenger user's conversation, `(messenger, user_id, chat_id)`, when
    their binding is removed outside an update (the web module's revocation), as /logout
    forgets its own. None for the SQL store: its rows go in the transaction that removes the
    binding (LinkRepo.remove). `bot_id` is the Telegram bot's; another messenger's front end
    keys its conversations with its own bot's id (`bot_ids`)."""
    states = runner.states
    if not isinstance(states, RedisStates):
        return None
    ids = {"telegram": bot_id, **(bot_ids or {})}

    async def forget(messenger: str, user_id: int, chat_id: int) -> None:
        await states.clear(StateKey(ids.get(messenger, 0), chat_id, user_id, messenger))

    return forget


async def check_redis(runner: Runner) -> None:
    """Stop start-up with one clear line when the Redis of REDIS_URL does not answer."""
    if isinstance(runner.states, RedisStates):
        from redis.exceptions import RedisError

        try:
            await runner.states.redis.ping()
        except RedisError as error:
            raise SettingsError(
                [
                    f"Ошибка: Redis по адресу из REDIS_URL не отвечает ({type(error).__name__}) — "
                    "проверьте адрес и что Redis запущен"
                ]
            ) from None


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


def link_pages(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    bot: Bot,
    clock: Clock,
    bot_username: str,
) -> LinkPages:
    """The bot-first sign-in pages (/link/{token} and the OIDC callback)."""
    return LinkPages(
        settings=settings,
        session_factory=session_factory,
        bot=bot,
        clock=clock,
        bot_username=bot_username,
        announce=announce_to(bot),
        provider=provider_from(settings),
        launch=telegram_launch(settings),
    )


def announce_to(bot: Bot) -> Callable[[Bot, Linked, Repositories], Awaitable[None]]:
    """How the bot-first sign-in page tells the chat it is linked (after its commit)."""

    async def announce(_: Bot, linked: Linked, repo: Repositories) -> None:
        reply = await announcement(repo, linked)
        await TelegramExecutor(bot, linked.binding.chat_id).execute(reply.effects)

    return announce


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


async def run(settings: Settings) -> None:
    """Run the bot, the web server, the retention job and (unless NOTIFY_IN_BOT is false) the
    notification dispatcher until SIGTERM or SIGINT: long polling, or webhook mode when
    PUBLIC_URL and WEBHOOK_SECRET are set."""
    engine = create_engine(settings.DATABASE_URL)
    await upgrade(engine)
    bot = build_bot(settings)
    clock = SystemClock()
    metrics = Metrics()
    session_factory = create_session_factory(engine)
    conversation = build_runner(settings, session_factory, clock)
    dp = build_dispatcher(settings, session_factory, clock, metrics, conversation)
    mode = "webhook" if settings.webhook_mode else "polling"
    runtime = Runtime(settings, engine, bot, dp, state={"mode": mode, mode: "starting"})
    track_updates(dp, runtime.state)
    liveness = Liveness()
    runner: web.AppRunner | None = None
    if settings.WEBHOOK_SECRET is not None and settings.PUBLIC_URL is None:
        log.warning("WEBHOOK_SECRET is set but PUBLIC_URL is not: running with long polling")
    background: Background | None = None
    decisions: DecisionsWebhook | None = None
    decisions_task: asyncio.Task[None] | None = None
    pruning: asyncio.Task[None] | None = None
    retention: Retention | None = None
    try:
        await check_redis(conversation)
        me = await fetch_me(bot)
        assert me.username is not None
        dp["bot_username"] = me.username
        await bot.set_my_commands(DEFAULT_COMMANDS)
        api = ApiContext(
            settings,
            session_factory,
            clock,
            deep_links(settings, me.username),
            metrics,
            forget_conversation=conversation_eraser(conversation, me.id),
        )
        web_app = build_web_app(
            engine, runtime.state, api=api, metrics=metrics, liveness=liveness, clock=clock
        )
        link_pages(settings, session_factory, bot, clock, me.username).register(web_app)
        receiver: WebhookReceiver | None = None
        if settings.webhook_mode:
            assert settings.WEBHOOK_SECRET is not None
            secret = settings.WEBHOOK_SECRET.get_secret_value()
            receiver = WebhookReceiver(bot, dp, secret)
            receiver.mount(web_app)
        runner = make_runner(web_app)
        await runner.setup()
        site = web.TCPSite(runner, settings.WEB_HOST, settings.WEB_PORT)
        await site.start()
        log.info(
            "bot @%s started: %s, web server on %s:%s",
            me.username,
            mode,
            settings.WEB_HOST,
            settings.WEB_PORT,
        )
        if settings.NOTIFY_IN_BOT:
            background = start_background(bot, session_factory, settings, clock)
            metrics.watch_worker(background.notifier)
            for task in background.tasks:
                liveness.watch(task.get_name(), task)
        else:
            log.info("notifications are sent by `python -m bot dispatcher` (NOTIFY_IN_BOT=false)")
        retention = Retention.start(session_factory, clock, settings.outbox_retention)
        liveness.watch(retention.task.get_name(), retention.task)
        if settings.decisions_webhook:
            decisions = DecisionsWebhook(settings, session_factory, clock, metrics)
            decisions_task = asyncio.create_task(decisions.run(), name="decisions_webhook")
            liveness.watch("decisions_webhook", decisions_task)
        pruning = asyncio.create_task(
            forget_handled_updates_periodically(session_factory, clock), name="forget-updates"
        )
        if receiver is not None:
            await serve_webhook(bot, dp, receiver, runner, webhook_url(settings))
        else:
            await serve_polling(bot, dp)
    finally:
        if pruning is not None:
            pruning.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pruning
        if decisions is not None and decisions_task is not None:
            await decisions.stop(decisions_task)
        if background is not None:
            await background.stop()
        if retention is not None:
            await retention.stop()
        if runner is not None:
            await runner.cleanup()
        await conversation.close()
        await bot.session.close()
        await engine.dispose()
        log.info("stopped")
