"""The real `python -m bot` serving MAX only, against the MAX Bot API double: long polling by
default, webhook mode with PUBLIC_URL and MAX_WEBHOOK_SECRET; a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import pytest

from tests.fakes.bot_api import FakeBotAPI
from tests.fakes.max_api import FakeMaxAPI
from tests.harness import SNILS_KEY
from tests.processes import BotProcess, free_port

pytestmark = pytest.mark.slow

USER = 7_000_001
SECRET = "max-webhook-secret-0123456789-abcdef"


def max_env(tmp_path: Path, api: FakeMaxAPI, port: int, **values: str) -> dict[str, str]:
    return {
        "MAX_BOT_TOKEN": api.token,
        "MAX_API_URL": api.url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}",
        "SNILS_HASH_KEY": SNILS_KEY,
        "WEB_PORT": str(port),
        **values,
    }


def webhook_env(tmp_path: Path, api: FakeMaxAPI, port: int) -> dict[str, str]:
    """MAX webhook mode: PUBLIC_URL on the bot's own port, and the secret."""
    return max_env(
        tmp_path, api, port, PUBLIC_URL=f"http://127.0.0.1:{port}", MAX_WEBHOOK_SECRET=SECRET
    )


def healthz(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


async def test_max_only_polls_answers_and_stops(tmp_path: Path) -> None:
    async with FakeMaxAPI(poll_timeout=1.0) as api:
        api.add_user(USER, "Ирина")
        port = free_port()
        bot = await BotProcess.start(tmp_path, **max_env(tmp_path, api, port))
        try:
            await bot.wait_for(api.polled)
            api.start_bot(USER)
            await bot.wait_for(lambda: any(m.from_bot for m in api.chat(USER)))
            assert api.last_bot_message(USER).text.startswith("Здравствуйте!")
            health = await asyncio.to_thread(healthz, port)
            assert health["status"] == "ok"
            assert health["max"] == "polling"
            assert await bot.terminate() == 0
        finally:
            await bot.kill()
        assert api.pending_updates() == []
        assert not api.calls_of("GET /updates")[0].query.get("marker")
        assert "Traceback" not in bot.stderr()
        assert api.token not in bot.stderr()


async def test_a_malformed_update_and_a_restart_lose_nothing(tmp_path: Path) -> None:
    """A malformed update neither ends the process nor holds the marker; the updates that come
    while the bot is down are all answered after the restart, even from a MAX that answers a
    poll without a marker with only the latest update: the marker is kept in the database."""
    async with FakeMaxAPI(poll_timeout=1.0) as api:
        api.add_user(USER, "Ирина")
        api.unmarked_poll_gives_last_only = True
        port = free_port()
        env = max_env(tmp_path, api, port)
        api.queue_update({"update_type": "message_callback", "timestamp": 1, "callback": "x"})
        api.start_bot(USER)
        bot = await BotProcess.start(tmp_path, **env)
        try:
            await bot.wait_for(lambda: api.pending_updates() == [] and len(replies(api)) == 1)
            assert await bot.terminate() == 0
        finally:
            await bot.kill()
        api.send_text(USER, "/help")
        api.send_text(USER, "/menu")
        bot = await BotProcess.start(tmp_path, **env)
        try:
            await bot.wait_for(lambda: api.pending_updates() == [] and len(replies(api)) == 3)
            assert await bot.terminate() == 0
        finally:
            await bot.kill()
        assert "Traceback" not in bot.stderr()


def replies(api: FakeMaxAPI) -> list[str]:
    return [m.text for m in api.chat(USER) if m.from_bot]


async def test_max_only_webhook_mode(tmp_path: Path) -> None:
    async with FakeMaxAPI() as api:
        api.add_user(USER, "Ирина")
        port = free_port()
        bot = await BotProcess.start(tmp_path, **webhook_env(tmp_path, api, port))
        try:
            await bot.wait_for(lambda: bool(api.subscriptions))
            assert api.subscriptions[0]["url"] == f"http://127.0.0.1:{port}/max/webhook"
            api.send_text(USER, "/help")
            assert await api.deliver_webhook() == [200]
            assert api.last_bot_message(USER).text.startswith("Помощь")
            assert not api.calls_of("GET /updates")
            assert await bot.terminate() == 0
        finally:
            await bot.kill()
        assert "Traceback" not in bot.stderr()


async def test_a_stalled_webhook_request_does_not_hold_up_the_stop(tmp_path: Path) -> None:
    """A request to the MAX webhook whose body never arrives (a broken connection, a stuck
    proxy) is in progress when SIGTERM comes: the process still stops, cutting it off, rather
    than waiting for it (aiohttp's own shutdown waits a minute for a request in progress)."""
    async with FakeMaxAPI() as api:
        port = free_port()
        bot = await BotProcess.start(tmp_path, **webhook_env(tmp_path, api, port))
        writer: asyncio.StreamWriter | None = None
        try:
            await bot.wait_for(lambda: bool(api.subscriptions))
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                (
                    "POST /max/webhook HTTP/1.1\r\n"
                    f"Host: 127.0.0.1:{port}\r\n"
                    f"X-Max-Bot-Api-Secret: {SECRET}\r\n"
                    "Content-Type: application/json\r\n"
                    "Content-Length: 1000\r\n"
                    "Expect: 100-continue\r\n\r\n"
                ).encode()
            )
            # The server has taken the request in: it asks for the body.
            assert (await reader.readline()).startswith(b"HTTP/1.1 100")
            writer.write(b'{"update_type": "message_created", ')  # and the rest never comes
            await writer.drain()
            assert await bot.terminate() == 0
            answer = await reader.read()
            assert b"200 OK" not in answer  # cut off unanswered: MAX delivers it again
        finally:
            if writer is not None:
                writer.close()
            await bot.kill()
        assert "Traceback" not in bot.stderr()


async def test_both_messengers_in_one_process(tmp_path: Path) -> None:
    async with FakeMaxAPI(poll_timeout=1.0) as api, FakeBotAPI() as telegram:
        api.add_user(USER, "Ирина")
        telegram.add_user(2000, first_name="Незнакомец")
        port = free_port()
        env = max_env(tmp_path, api, port, BOT_TOKEN=telegram.token, TELEGRAM_API_URL=telegram.url)
        bot = await BotProcess.start(tmp_path, **env)
        try:
            await bot.wait_for(api.polled)
            await bot.wait_for(lambda: bool(telegram.calls_of("deleteWebhook")))
            api.start_bot(USER)
            telegram.send_text(2000, "/start")
            await bot.wait_for(lambda: any(m.from_bot for m in api.chat(USER)))
            await bot.wait_for(lambda: any(m.from_bot for m in telegram.chat(2000)))
            health = await asyncio.to_thread(healthz, port)
            assert (health["status"], health["mode"], health["max"]) == ("ok", "polling", "polling")
            assert await bot.terminate() == 0
        finally:
            await bot.kill()
        assert api.pending_updates() == []
        assert "Traceback" not in bot.stderr()
