"""Webhook mode through the Bot API double: the secret token, processing once, quick answers,
a clean stop; and the real `python -m bot` process receiving its updates by webhook."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot, Dispatcher
from aiogram.types import TelegramObject
from aiohttp import ClientSession, web
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.conversation.intake import MAX_CONCURRENT_UPDATES
from bot.conversation.receipts import HANDLED_UPDATES_KEPT, forget_handled_updates
from bot.conversation.turn import Command, Turn
from bot.screens.menu import message
from bot.settings import SettingsError
from bot.telegram.bot import build_bot, build_dispatcher
from bot.telegram.webhook import (
    WEBHOOK_PATH,
    WebhookReceiver,
    set_webhook,
    webhook_url,
)
from bot.web.server import build_web_app, make_runner
from services.clock import ManualClock
from storage.models import ProcessedUpdate
from storage.updates import UpdateKey, record_update
from tests.e2e.test_process import bot_env, wait_for
from tests.fakes.bot_api import FakeBotAPI
from tests.harness import test_settings

pytestmark = pytest.mark.every_backend  # updates recorded once: the database's constraints

SECRET = "webhook-Secret_42-0123456789abcdef"
STRANGER = 2000


class UpdateCounter:
    """An outer middleware that counts the updates the Dispatcher was given."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        self.seen.append(event.update_id)  # type: ignore[attr-defined]
        return await handler(event, data)


@dataclass
class Replica:
    """One bot replica in webhook mode, in this process, on a free port of 127.0.0.1."""

    bot: Bot
    dp: Dispatcher
    receiver: WebhookReceiver
    runner: web.AppRunner
    counter: UpdateCounter

    @property
    def base_url(self) -> str:
        host, port = self.runner.addresses[0][:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        return self.base_url + WEBHOOK_PATH

    async def close(self) -> None:
        await self.runner.cleanup()
        await self.receiver.stop()
        await self.dp.storage.close()
        await self.bot.session.close()


@pytest.fixture
async def start_replica(
    api: FakeBotAPI,
    database_url: str,
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> AsyncIterator[Callable[[], Awaitable[Replica]]]:
    replicas: list[Replica] = []

    async def start() -> Replica:
        settings = test_settings(api, database_url, WEBHOOK_SECRET=SECRET)
        bot = build_bot(settings)
        dp = build_dispatcher(settings, session_factory, clock)
        dp["bot_username"] = api.bot_username
        counter = UpdateCounter()
        dp.update.outer_middleware(counter)
        receiver = WebhookReceiver(bot, dp, SECRET)
        app = build_web_app(engine, {"mode": "webhook"})
        receiver.mount(app)
        runner = make_runner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        replica = Replica(bot, dp, receiver, runner, counter)
        replicas.append(replica)
        return replica

    yield start
    for replica in replicas:
        await replica.close()


@pytest.fixture
async def replica(start_replica: Callable[[], Awaitable[Replica]], api: FakeBotAPI) -> Replica:
    replica = await start_replica()
    await set_webhook(replica.bot, replica.dp, replica.url, SECRET)
    return replica


async def processed_count(session_factory: async_sessionmaker[AsyncSession]) -> int:
    async with session_factory() as session:
        return int(await session.scalar(select(func.count()).select_from(ProcessedUpdate)) or 0)


def on_command(replica: Replica, name: str, flow: Callable[[Turn], Awaitable[None]]) -> None:
    """The replica's conversation, with `/name` going to `flow` instead."""
    runner = replica.dp["runner"]
    default = runner.conversation

    async def conversation(turn: Turn) -> None:
        if isinstance(turn.event, Command) and turn.event.name == name:
            await flow(turn)
        else:
            await default(turn)

    runner.conversation = conversation


def done(turn: Turn) -> None:
    turn.reply.show(message("Готово."))


def bot_replies(api: FakeBotAPI, chat_id: int) -> list[str]:
    return [m.text for m in api.chat(chat_id) if m.from_bot]


async def test_set_webhook_sends_the_secret_and_the_update_types_the_routers_use(
    replica: Replica, api: FakeBotAPI
) -> None:
    assert api.webhook is not None
    assert api.webhook["url"] == replica.url
    assert api.webhook["secret_token"] == SECRET
    assert api.webhook["allowed_updates"] == replica.dp.resolve_used_update_types()
    assert "message" in api.webhook["allowed_updates"]
    assert api.webhook["drop_pending_updates"] is False
    assert [c.status for c in api.calls_of("setWebhook")] == [200]


def test_the_webhook_address_is_the_fixed_path_under_public_url(api: FakeBotAPI) -> None:
    settings = test_settings(api, "sqlite+aiosqlite:///x", PUBLIC_URL="https://bot.example.ru/")
    assert webhook_url(settings) == "https://bot.example.ru/telegram/webhook"


async def test_an_address_telegram_refuses_is_a_settings_error(
    start_replica: Callable[[], Awaitable[Replica]],
) -> None:
    replica = await start_replica()
    with pytest.raises(SettingsError) as error:
        await set_webhook(replica.bot, replica.dp, "ftp://bot.example.ru/telegram/webhook", SECRET)
    assert error.value.lines[0].startswith("Ошибка настройки: PUBLIC_URL задана неверно")


@pytest.mark.parametrize("secret", [None, "wrong-secret", SECRET[:-1], SECRET + "2"])
async def test_a_wrong_or_missing_secret_gets_401_and_nothing_is_processed(
    replica: Replica,
    api: FakeBotAPI,
    session_factory: async_sessionmaker[AsyncSession],
    secret: str | None,
) -> None:
    update = api.send_text(STRANGER, "/start")
    assert await api.deliver_to(replica.url, update, secret) == 401
    assert replica.counter.seen == []  # no handler ran
    assert bot_replies(api, STRANGER) == []  # no message sent
    assert api.calls_of("sendMessage") == []
    assert await processed_count(session_factory) == 0  # no row written


async def test_an_update_delivered_twice_is_processed_once(
    replica: Replica, api: FakeBotAPI, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    update = api.send_text(STRANGER, "/start")
    assert await api.deliver_webhook() == [200]
    assert await api.deliver_to(replica.url, update, SECRET) == 200  # Telegram's retry
    replies = bot_replies(api, STRANGER)
    assert len(replies) == 1
    assert "привяжите Telegram" in replies[0]
    assert await processed_count(session_factory) == 1


async def test_a_repeated_update_is_processed_once_across_replicas(
    start_replica: Callable[[], Awaitable[Replica]], api: FakeBotAPI
) -> None:
    first, second = await start_replica(), await start_replica()
    updates = [api.send_text(STRANGER, "/start"), api.send_text(STRANGER, "/help")]
    for update in updates:
        assert await api.deliver_to(first.url, update, SECRET) == 200
        assert await api.deliver_to(second.url, update, SECRET) == 200
    assert len(bot_replies(api, STRANGER)) == 2


async def test_two_replicas_given_one_update_at_once_handle_it_once(
    start_replica: Callable[[], Awaitable[Replica]],
    api: FakeBotAPI,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    first, second = await start_replica(), await start_replica()
    update = api.send_text(STRANGER, "/start")
    statuses = await asyncio.gather(
        api.deliver_to(first.url, update, SECRET), api.deliver_to(second.url, update, SECRET)
    )
    assert statuses == [200, 200]
    assert len(bot_replies(api, STRANGER)) == 1  # the second handling was undone, unsaid
    assert await processed_count(session_factory) == 1


async def test_the_answer_waits_for_the_update_to_be_handled(
    replica: Replica, api: FakeBotAPI, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(turn: Turn) -> None:
        started.set()
        await release.wait()
        done(turn)

    on_command(replica, "slow", slow)
    api.send_text(STRANGER, "/slow")
    delivery = asyncio.create_task(api.deliver_webhook())
    await started.wait()
    await asyncio.sleep(0.05)
    assert not delivery.done()  # no 200 while the update is being handled
    assert await processed_count(session_factory) == 0
    release.set()
    assert await delivery == [200]
    assert bot_replies(api, STRANGER) == ["Готово."]
    assert await processed_count(session_factory) == 1
    assert api.pending_updates() == []


async def test_a_failing_update_is_recorded_answered_and_not_handled_again(
    replica: Replica, api: FakeBotAPI, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    calls = 0

    async def broken(turn: Turn) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("a bug")

    on_command(replica, "broken", broken)
    update = api.send_text(STRANGER, "/broken")
    assert await api.deliver_webhook() == [200]  # a retry would fail the same way
    assert bot_replies(api, STRANGER) == ["Что-то пошло не так, попробуйте ещё раз."]
    assert await api.deliver_to(replica.url, update, SECRET) == 200
    # The redelivery is not looked up first (no SELECT before the record, runner.py): it runs
    # again, finds the record written by the first handling, is rolled back and says nothing.
    assert calls == 2
    assert len(bot_replies(api, STRANGER)) == 1
    assert await processed_count(session_factory) == 1


async def test_an_update_that_cannot_be_recorded_gets_503_and_is_handled_when_it_comes_again(
    replica: Replica,
    api: FakeBotAPI,
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """The database fails while the update is handled and while its failure is recorded:
    nothing was committed and nobody was told anything, so Telegram must deliver it again."""
    failing = True

    def refuse(*_: Any) -> None:
        if failing:
            raise OperationalError("INSERT", {}, Exception("database is locked"))

    event.listen(engine.sync_engine, "before_cursor_execute", _only_for_processed(refuse))
    update = api.send_text(STRANGER, "/start")
    assert await api.deliver_webhook() == [503]
    assert bot_replies(api, STRANGER) == []  # nothing was said of what was not done
    assert [u["update_id"] for u in api.pending_updates()] == [update["update_id"]]
    failing = False
    assert await api.deliver_webhook() == [200]
    assert len(bot_replies(api, STRANGER)) == 1
    assert await processed_count(session_factory) == 1


def _only_for_processed(refuse: Callable[..., None]) -> Callable[..., None]:
    """A `before_cursor_execute` listener calling `refuse` for writes of processed_updates."""

    def listener(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT") and "processed_updates" in statement:
            refuse()

    return listener


async def test_one_replica_processes_a_bounded_number_of_updates_at_once(
    replica: Replica, api: FakeBotAPI
) -> None:
    users = range(3000, 3000 + MAX_CONCURRENT_UPDATES + 4)
    running: list[int] = []
    all_slots_taken, release = asyncio.Event(), asyncio.Event()

    async def slow(turn: Turn) -> None:
        running.append(turn.peer.chat_id)
        if len(running) == MAX_CONCURRENT_UPDATES:
            all_slots_taken.set()
        await release.wait()
        done(turn)

    on_command(replica, "slow", slow)
    for user in users:
        api.add_user(user)
        api.send_text(user, "/slow")
    delivery = asyncio.create_task(api.deliver_webhook(concurrency=len(users)))
    await all_slots_taken.wait()
    for _ in range(20):
        await asyncio.sleep(0)
    assert len(running) == MAX_CONCURRENT_UPDATES
    assert replica.receiver.in_flight == len(users)
    release.set()
    assert await delivery == [200] * len(users)
    assert sorted(running) == list(users)


async def test_stopping_waits_for_updates_in_progress(replica: Replica, api: FakeBotAPI) -> None:
    started, release = asyncio.Event(), asyncio.Event()

    async def slow(turn: Turn) -> None:
        started.set()
        await release.wait()
        done(turn)

    on_command(replica, "slow", slow)
    api.send_text(STRANGER, "/slow")
    delivery = asyncio.create_task(api.deliver_webhook())
    await started.wait()
    stopping = asyncio.create_task(replica.receiver.stop())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not stopping.done()
    later = api.send_text(STRANGER, "/help")
    assert await api.deliver_to(replica.url, later, SECRET) == 503  # taken no more
    release.set()
    await stopping
    assert await delivery == [200]
    assert bot_replies(api, STRANGER) == ["Готово."]


async def test_stopping_hands_back_what_outlives_the_grace_period(
    start_replica: Callable[[], Awaitable[Replica]],
    api: FakeBotAPI,
    session_factory: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An update cut off by a stop is rolled back and unanswered: Telegram delivers it again,
    and another replica (or this one restarted) handles it."""
    first = await start_replica()
    await set_webhook(first.bot, first.dp, first.url, SECRET)
    started, stuck = asyncio.Event(), True

    async def slow(turn: Turn) -> None:
        started.set()
        if stuck:
            await asyncio.Event().wait()
        done(turn)

    on_command(first, "slow", slow)
    api.send_text(STRANGER, "/slow")
    delivery = asyncio.create_task(api.deliver_webhook())
    await started.wait()
    with caplog.at_level(logging.WARNING, logger="bot.telegram.webhook"):
        await first.receiver.stop(grace_seconds=0.01)
    assert await delivery == [503]
    assert first.receiver.in_flight == 0
    assert "1 updates still in progress" in caplog.text
    assert await processed_count(session_factory) == 0
    assert len(api.pending_updates()) == 1

    stuck = False
    second = await start_replica()
    on_command(second, "slow", slow)
    await set_webhook(second.bot, second.dp, second.url, SECRET)
    assert await api.deliver_webhook() == [200]
    assert bot_replies(api, STRANGER) == ["Готово."]
    assert await processed_count(session_factory) == 1


@pytest.mark.parametrize("body", [b"not json", b'{"message": {"text": "no update id"}}', b"[]"])
async def test_a_body_that_is_not_an_update_gets_400_and_is_not_recorded(
    replica: Replica, session_factory: async_sessionmaker[AsyncSession], body: bytes
) -> None:
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
    async with ClientSession() as http, http.post(replica.url, data=body, headers=headers) as r:
        assert r.status == 400
    assert replica.counter.seen == []
    assert await processed_count(session_factory) == 0


async def test_update_ids_are_forgotten_after_a_day(
    session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    first, second = UpdateKey("telegram", "1"), UpdateKey("telegram", "2")
    assert await record_update(session_factory, first, clock.now())
    clock.advance(hours=12)
    assert await record_update(session_factory, second, clock.now())
    assert not await record_update(session_factory, first, clock.now())
    # another messenger's update of the same key is another update
    assert await record_update(session_factory, UpdateKey("max", "1"), clock.now())
    clock.advance(seconds=HANDLED_UPDATES_KEPT.total_seconds() - 12 * 3600 + 1)
    assert await forget_handled_updates(session_factory, clock) == 1
    async with session_factory() as session:
        kept = await session.execute(select(ProcessedUpdate.messenger, ProcessedUpdate.key))
        assert sorted(kept.tuples()) == [("max", "1"), ("telegram", "2")]


async def test_health_shows_webhook_mode(replica: Replica) -> None:
    async with ClientSession() as http, http.get(replica.base_url + "/healthz") as response:
        assert response.status == 200
        body = await response.json()
    assert body["mode"] == "webhook"
    assert body["status"] == "ok"


# -- the real process ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_bot_process_in_webhook_mode_answers_start_once(tmp_path: Path) -> None:
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    async with FakeBotAPI() as api:
        api.add_user(STRANGER, first_name="Незнакомец")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            cwd=tmp_path,
            env=bot_env(
                tmp_path,
                BOT_TOKEN=api.token,
                TELEGRAM_API_URL=api.url,
                WEB_PORT=str(port),
                PUBLIC_URL=public_url,
                WEBHOOK_SECRET=SECRET,
            ),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await wait_for(lambda: api.webhook is not None, process)
            assert api.webhook is not None
            assert api.webhook["url"] == public_url + "/telegram/webhook"
            assert api.webhook["secret_token"] == SECRET
            assert "message" in api.webhook["allowed_updates"]
            async with ClientSession() as http, http.get(public_url + "/healthz") as response:
                assert (await response.json())["mode"] == "webhook"

            start = api.send_text(STRANGER, "/start")
            assert await api.deliver_webhook() == [200]
            await wait_for(lambda: bool(bot_replies(api, STRANGER)), process)
            assert "привяжите Telegram" in bot_replies(api, STRANGER)[0]
            assert await api.deliver_to(api.webhook["url"], start, SECRET) == 200  # a retry
            forged = api.send_text(STRANGER, "/help")
            assert await api.deliver_to(api.webhook["url"], forged, "wrong-secret") == 401

            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), timeout=30)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        err = (await process.stderr.read()).decode() if process.stderr else ""
        assert code == 0, err
        # Everything taken in was processed before the exit: /start once, the forged /help never.
        assert len(bot_replies(api, STRANGER)) == 1
        assert api.calls_of("getUpdates") == []
        assert api.calls_of("deleteWebhook") == []  # other replicas keep receiving
        assert "webhook" in err
        assert "stopped" in err
        assert "Traceback" not in err
        assert SECRET not in err
