"""The app factory: bot, dispatcher, web server; and the process that runs them together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
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
from aiogram.exceptions import TelegramNetworkError, TelegramServerError, TelegramUnauthorizedError
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import BotCommand, User
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import texts
from bot.api import ApiContext
from bot.api.core import ForgetConversation
from bot.conversation.linking import announcement
from bot.conversation.locks import RedisLocks
from bot.conversation.runner import Runner
from bot.decisions_webhook import DecisionsWebhook
from bot.flood import FloodWait
from bot.max.client import MaxError
from bot.max.front import MaxFront
from bot.max.front import build_client as build_max_client
from bot.max.front import fetch_me as fetch_max_me
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
from services.linking import Linked, deep_link, max_deep_link
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


def conversation_eraser(runner: Runner, bot_id: int) -> ForgetConversation | None:
    """What forgets a Telegram user's conversation, `(user_id, chat_id)`, when their binding is
    removed outside an update (the web module's revocation), as /logout forgets its own. None
    for the SQL store: its rows go in the transaction that removes the binding
    (LinkRepo.remove)."""
    states = runner.states
    if not isinstance(states, RedisStates):
        return None

    async def forget(user_id: int, chat_id: int) -> None:
        await states.clear(StateKey(bot_id, chat_id, user_id))

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
        await TelegramExecutor(bot, linked.link.chat_id).execute(reply.effects)

    return announce


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
    """Run the bot (Telegram when BOT_TOKEN is set, MAX when MAX_BOT_TOKEN is set, both when
    both are), the web server, the retention job and (unless NOTIFY_IN_BOT is false) the
    notification dispatchers until SIGTERM or SIGINT. Each messenger by long polling, or by
    webhook: Telegram's when PUBLIC_URL and WEBHOOK_SECRET are set, MAX's when PUBLIC_URL and
    MAX_WEBHOOK_SECRET are."""
    engine = create_engine(settings.DATABASE_URL)
    await upgrade(engine)
    clock = SystemClock()
    metrics = Metrics()
    session_factory = create_session_factory(engine)
    conversation = build_runner(settings, session_factory, clock)
    bot = build_bot(settings) if settings.BOT_TOKEN is not None else None
    dp = (
        build_dispatcher(settings, session_factory, clock, metrics, conversation)
        if bot is not None
        else None
    )
    max_front = (
        MaxFront(settings, conversation, build_max_client(settings))
        if settings.MAX_BOT_TOKEN is not None
        else None
    )
    mode = "webhook" if settings.webhook_mode else "polling"
    state: dict[str, object] = {"mode": mode, mode: "starting"} if dp is not None else {}
    if max_front is not None:
        max_front.state = state
    if dp is not None:
        track_updates(dp, state)
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
        bot_username = ""
        bot_id = 0
        if bot is not None and dp is not None:
            me = await fetch_me(bot)
            assert me.username is not None
            bot_username, bot_id = me.username, me.id
            dp["bot_username"] = me.username
            await bot.set_my_commands(DEFAULT_COMMANDS)
        if max_front is not None:
            max_me = await max_front.start()
            log.info("MAX bot %s: %s", max_me.username, max_front.mode)
        api = ApiContext(
            settings,
            session_factory,
            clock,
            bot_username,
            metrics,
            forget_conversation=conversation_eraser(conversation, bot_id) if bot else None,
        )
        web_app = build_web_app(
            engine, state, api=api, metrics=metrics, liveness=liveness, clock=clock
        )
        receiver: WebhookReceiver | None = None
        if bot is not None and dp is not None:
            link_pages(settings, session_factory, bot, clock, bot_username).register(web_app)
            if settings.webhook_mode:
                assert settings.WEBHOOK_SECRET is not None
                secret = settings.WEBHOOK_SECRET.get_secret_value()
                receiver = WebhookReceiver(bot, dp, secret)
                receiver.mount(web_app)
        if max_front is not None:
            max_front.mount(web_app)
        runner = make_runner(web_app)
        await runner.setup()
        site = web.TCPSite(runner, settings.WEB_HOST, settings.WEB_PORT)
        await site.start()
        log.info(
            "bot started for %s, web server on %s:%s",
            ", ".join(settings.messengers),
            settings.WEB_HOST,
            settings.WEB_PORT,
        )
        if settings.NOTIFY_IN_BOT:
            background = start_background(
                bot,
                session_factory,
                settings,
                clock,
                max_front.client if max_front is not None else None,
            )
            for notifier in background.notifiers:
                metrics.watch_worker(notifier)
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
        await serve_messengers(settings, bot, dp, receiver, runner, max_front, liveness)
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
        if bot is not None:
            await bot.session.close()
        if max_front is not None:
            await max_front.close()
        await engine.dispose()
        log.info("stopped")


async def serve_messengers(
    settings: Settings,
    bot: Bot | None,
    dp: Dispatcher | None,
    receiver: WebhookReceiver | None,
    runner: web.AppRunner,
    max_front: MaxFront | None,
    liveness: Liveness,
) -> None:
    """Every messenger served until SIGTERM or SIGINT (one stop for all); a messenger's loop
    that fails stops the others too, and its error comes out."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT)
    for number in signals:
        loop.add_signal_handler(number, stop.set)
    tasks: list[asyncio.Task[None]] = []
    try:
        if bot is not None and dp is not None:
            if receiver is not None:
                serving = serve_webhook(bot, dp, receiver, runner, webhook_url(settings), stop)
            else:
                serving = serve_polling(bot, dp, stop=stop)
            tasks.append(asyncio.create_task(serving, name="telegram"))
        if max_front is not None:
            tasks.append(asyncio.create_task(max_front.serve(stop), name="max"))
            liveness.watch("max", tasks[-1])
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        stop.set()  # a loop that ended (failed) ends the others
        await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        for number in signals:
            loop.remove_signal_handler(number)


async def bot_links(settings: Settings) -> Callable[[str], list[str]] | None:
    """How a link token becomes a link in every messenger served (Telegram's `t.me` first);
    None (said on stderr) if a messenger's API cannot be reached to learn the bot's name."""
    links: list[Callable[[str], str]] = []
    if settings.BOT_TOKEN is not None:
        bot = build_bot(settings)
        try:
            username = (await fetch_me(bot)).username or ""
        except (TelegramNetworkError, TelegramServerError):
            print("Не удалось связаться с Telegram Bot API, попробуйте позже.", file=sys.stderr)
            return None
        finally:
            await bot.session.close()
        links.append(lambda token: deep_link(username, token))
    if settings.MAX_BOT_TOKEN is not None:
        client = build_max_client(settings)
        try:
            name = (await fetch_max_me(client)).username
        except MaxError:
            print("Не удалось связаться с MAX Bot API, попробуйте позже.", file=sys.stderr)
            return None
        finally:
            await client.close()
        links.append(lambda token: max_deep_link(name, token))
    return lambda token: [link(token) for link in links]
