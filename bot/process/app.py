"""The process of `python -m bot`: the Telegram bot (bot/telegram), the web server (bot/web) and
the background jobs (bot/process/dispatcher.py), wired together and run until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.conversation.receipts import forget_handled_updates_periodically
from bot.conversation.runner import Runner
from bot.conversation.stores import build_runner
from bot.links import deep_links
from bot.process.dispatcher import Background, start_background
from bot.settings import Settings, SettingsError
from bot.telegram.bot import (
    DEFAULT_COMMANDS,
    Bot,
    Dispatcher,
    announce_to,
    build_bot,
    build_dispatcher,
    chat_teller,
    fetch_me,
    track_updates,
)
from bot.telegram.polling import serve_polling
from bot.telegram.webhook import WebhookReceiver, serve_webhook, webhook_url
from bot.texts import cli
from bot.web.api import ApiContext
from bot.web.api.core import ForgetConversation
from bot.web.decisions_webhook import DecisionsWebhook
from bot.web.metrics import Metrics
from bot.web.oidc import LinkPages, provider_from, telegram_launch
from bot.web.server import Liveness, build_web_app, make_runner
from services.clock import Clock, SystemClock
from services.retention import Retention
from storage.db import create_engine, create_session_factory
from storage.migrate import upgrade
from storage.states import RedisStates, StateKey

log = logging.getLogger(__name__)


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
                [cli.REDIS_UNREACHABLE.format(error=type(error).__name__)]
            ) from None


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
        tell=chat_teller(bot),
        clock=clock,
        bot_username=bot_username,
        announce=announce_to(bot),
        provider=provider_from(settings),
        launch=telegram_launch(settings),
    )


@dataclass
class Runtime:
    """What the running process holds, for start-up and a clean stop."""

    settings: Settings
    engine: AsyncEngine
    bot: Bot
    dp: Dispatcher
    state: dict[str, object] = field(default_factory=dict)


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
