"""The process of `python -m bot`: the Telegram bot (bot/telegram) and the MAX bot (bot/max),
whichever have a token, the web server (bot/web) and the background jobs
(bot/process/dispatcher.py), wired together and run until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.conversation.receipts import forget_handled_updates_periodically
from bot.conversation.runner import Runner
from bot.conversation.stores import build_runner
from bot.links import deep_links
from bot.max.front import MaxFront
from bot.max.front import build_client as build_max_client
from bot.process.dispatcher import Background, start_background
from bot.process.stopping import close_connections, stop_signals, within
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


async def run(settings: Settings) -> None:
    """Run the bot (Telegram when BOT_TOKEN is set, MAX when MAX_BOT_TOKEN is set, both when
    both are), the web server, the retention job and (unless NOTIFY_IN_BOT is false) the
    notification dispatchers until SIGTERM or SIGINT. Each messenger by long polling, or by
    webhook: Telegram's when PUBLIC_URL and WEBHOOK_SECRET are set, MAX's when PUBLIC_URL and
    MAX_WEBHOOK_SECRET are."""
    with stop_signals() as stop:
        await _run(settings, stop)


async def _run(settings: Settings, stop: asyncio.Event) -> None:
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
    pruning_stop = asyncio.Event()
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
        max_username: str | None = None
        max_ids: dict[str, int] = {}
        if max_front is not None:
            max_me = await max_front.start()
            max_username, max_ids = max_me.username, {"max": max_me.user_id}
            log.info("MAX bot %s: %s", max_me.username, max_front.mode)
        api = ApiContext(
            settings,
            session_factory,
            clock,
            deep_links(settings, bot_username or None, max_username),
            metrics,
            forget_conversation=conversation_eraser(conversation, bot_id, max_ids),
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
            forget_handled_updates_periodically(session_factory, clock, pruning_stop),
            name="forget-updates",
        )
        await serve_messengers(settings, bot, dp, receiver, runner, max_front, liveness, stop)
    finally:  # each part bounded (bot/process/stopping.py): none can hold up the stop
        if pruning is not None:
            pruning_stop.set()
            await within("the pruning of handled update ids", pruning)
        if decisions is not None and decisions_task is not None:
            await within("the decisions webhook", decisions.stop(decisions_task))
        if background is not None:
            await within("the notification dispatcher", background.stop())
        if retention is not None:
            await within("the retention job", retention.stop())
        if runner is not None:
            await within("the web server", runner.cleanup())
        await within("the conversation store", conversation.close())
        await close_connections(
            bot.session if bot is not None else None,
            max_front.client if max_front is not None else None,
            engine,
        )
        log.info("stopped")


async def serve_messengers(
    settings: Settings,
    bot: Bot | None,
    dp: Dispatcher | None,
    receiver: WebhookReceiver | None,
    runner: web.AppRunner,
    max_front: MaxFront | None,
    liveness: Liveness,
    stop: asyncio.Event,
) -> None:
    """Every messenger served until `stop` (SIGTERM or SIGINT: one stop for all); a messenger's
    loop that fails stops the others too, and its error comes out."""
    tasks: list[asyncio.Task[None]] = []
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
