"""The real `python -m bot` process: settings errors, and a run against the Bot API double."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.settings import load_settings
from services.clock import SystemClock
from services.linking import UNLINKED_KIND, UnlinkReason
from services.notifications import notify_new_application
from storage.db import create_engine, create_session_factory
from storage.migrate import upgrade
from storage.models import Application, OutboxMessage
from storage.repositories import Repositories
from tests import factories
from tests.fakes.bot_api import FakeBotAPI
from tests.processes import bot_env as bot_env  # tests/bot/test_webhook.py takes it from here
from tests.processes import run_bot, running, sqlite_url


async def test_no_messenger_token_is_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    code, _, err = await run_bot(tmp_path)
    assert code == 2
    assert err.strip().splitlines() == [
        "Ошибка настройки: не задан ни BOT_TOKEN (Telegram), ни MAX_BOT_TOKEN (MAX) — задайте "
        "хотя бы один: токен Telegram-бота выдаёт @BotFather, токен MAX-бота — раздел «Чат-боты» "
        "платформы MAX для партнёров"
    ]
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"BOT_TOKEN": "not-a-token"}, "Ошибка настройки: BOT_TOKEN задана неверно"),
        ({"BOT_TOKEN": "123456:TEST", "WEB_PORT": "port"}, "Ошибка настройки: WEB_PORT задана"),
        ({"BOT_TOKEN": "123456:TEST", "TIMEZONE": "Mars/Base"}, "Ошибка настройки: TIMEZONE"),
        (
            {"BOT_TOKEN": "123456:TEST", "DATABASE_URL": "mysql://x"},
            "Ошибка настройки: DATABASE_URL",
        ),
    ],
)
async def test_invalid_settings_stop_start_up(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    code, _, err = await run_bot(tmp_path, **env)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(expected)
    assert "not-a-token" not in err  # values are never echoed


SHORT = "Xy9_" * 7 + "Xy9"  # 31 characters: one short of the minimum
LONG_ENOUGH = "Xy9_" * 8
DPO_URL = "https://dpo.example.ru/bot/decisions"
TOO_SHORT = "не короче 32 символов"
THIS_MACHINE = "http:// — только для 127.0.0.1 и localhost"


@pytest.mark.parametrize(
    ("env", "name", "hint"),
    [
        ({"API_TOKEN": SHORT}, "API_TOKEN", TOO_SHORT),
        ({"WEBHOOK_SECRET": SHORT}, "WEBHOOK_SECRET", "от 32 до 256 символов"),
        (
            {"DPO_WEBHOOK_URL": DPO_URL, "DPO_WEBHOOK_SECRET": SHORT},
            "DPO_WEBHOOK_SECRET",
            TOO_SHORT,
        ),
        ({"SNILS_HASH_KEY": SHORT}, "SNILS_HASH_KEY", TOO_SHORT),
        # plain http only to this machine: elsewhere it would carry tokens and signed decisions
        ({"PUBLIC_URL": "http://bot.example.ru"}, "PUBLIC_URL", THIS_MACHINE),
        ({"OIDC_ISSUER": "http://sso.example.ru/realms/esia"}, "OIDC_ISSUER", THIS_MACHINE),
        ({"OIDC_ISSUER": "http://127.0.0.1.example.ru/"}, "OIDC_ISSUER", THIS_MACHINE),
        (
            {"DPO_WEBHOOK_URL": "http://10.0.0.7/decisions", "DPO_WEBHOOK_SECRET": LONG_ENOUGH},
            "DPO_WEBHOOK_URL",
            THIS_MACHINE,
        ),
    ],
)
async def test_short_secrets_and_plain_http_stop_start_up(
    tmp_path: Path, env: dict[str, str], name: str, hint: str
) -> None:
    code, _, err = await run_bot(tmp_path, BOT_TOKEN="123456:TEST", **env)
    assert code == 2
    [line] = err.strip().splitlines()
    assert line.startswith(f"Ошибка настройки: {name} задана неверно — ")
    assert hint in line
    assert SHORT not in err  # values are never echoed


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080", "http://127.3.2.1:8080", "http://[::1]:8080", "http://localhost"],
)
def test_plain_http_is_for_this_machine(url: str) -> None:
    settings = load_settings(
        require_bot_token=False,
        _env_file=None,
        PUBLIC_URL=url,
        OIDC_ISSUER=url,
        DPO_WEBHOOK_URL=url,
        DPO_WEBHOOK_SECRET=LONG_ENOUGH,
        API_TOKEN=LONG_ENOUGH,
        WEBHOOK_SECRET=LONG_ENOUGH,
        SNILS_HASH_KEY=LONG_ENOUGH,
    )
    assert str(settings.PUBLIC_URL).startswith("http://")


async def test_migrate_command(tmp_path: Path) -> None:
    code, out, _ = await run_bot(tmp_path, "migrate")
    assert code == 0
    assert "Миграции применены" in out
    assert (tmp_path / "bot.sqlite3").exists()


async def test_bot_process_answers_start_and_stops_on_sigterm(tmp_path: Path) -> None:
    async with FakeBotAPI() as api:
        api.add_user(2000, first_name="Незнакомец")
        env = {"BOT_TOKEN": api.token, "TELEGRAM_API_URL": api.url, "WEB_PORT": "0"}
        async with running(tmp_path, DATABASE_URL=sqlite_url(tmp_path), **env) as bot:
            # deleteWebhook comes right before polling starts (a long poll is recorded on return)
            await bot.wait_for(lambda: bool(api.calls_of("deleteWebhook")))
            assert [c["command"] for c in api.calls_of("setMyCommands")[0].params["commands"]][
                :2
            ] == ["start", "help"]
            api.send_text(2000, "/start")
            await bot.wait_for(lambda: any(m.from_bot for m in api.chat(2000)))
            assert "привяжите Telegram" in api.last_bot_message(2000).text
            code = await bot.terminate()
        err = bot.stderr()
        assert code == 0, err
        assert "stopped" in err
        assert "Traceback" not in err


async def test_a_second_sigterm_during_the_stop_changes_nothing(tmp_path: Path) -> None:
    """The stop waits for a push Telegram has not answered yet; a second SIGTERM meanwhile (an
    impatient operator, a supervisor) neither ends the process half-way nor leaves it killed by
    the signal: it stops as the first asked, exit code 0."""
    engine = create_engine(sqlite_url(tmp_path))
    try:
        await upgrade(engine)
        async with create_session_factory(engine)() as session:
            session.add(
                factories.outbox_row(
                    "telegram",
                    UNLINKED_KIND,
                    now=SystemClock().now(),
                    chat_id=2000,
                    payload={"reason": UnlinkReason.REVOKED.value},
                )
            )
            await session.commit()
    finally:
        await engine.dispose()
    async with FakeBotAPI() as api:
        api.add_user(2000, first_name="Незнакомец")
        api.timeout_next("sendMessage", seconds=4.0)  # sent, answered 4 s later
        env = {"BOT_TOKEN": api.token, "TELEGRAM_API_URL": api.url, "WEB_PORT": "0"}
        async with running(tmp_path, DATABASE_URL=sqlite_url(tmp_path), **env) as bot:
            await bot.wait_for(lambda: any(m.from_bot for m in api.chat(2000)))
            bot.ask_to_stop()
            await asyncio.sleep(1.0)  # polling has stopped; the dispatcher waits for the answer
            bot.process.send_signal(signal.SIGTERM)
            code = await bot.terminate()
        err = bot.stderr()
        assert code == 0, err
        assert "stopped" in err
        assert "Traceback" not in err


async def wait_for(condition: object, process: asyncio.subprocess.Process) -> None:
    """Wait up to a minute: starting Python and importing aiogram is slow on a loaded machine.

    For a process started with its stderr piped (tests/bot/test_webhook.py); a BotProcess has
    its own `wait_for`."""
    assert callable(condition)
    for _ in range(1200):
        if condition():
            return
        if process.returncode is not None:
            err = (await process.stderr.read()).decode() if process.stderr else ""
            raise AssertionError(f"the bot exited with {process.returncode}: {err}")
        await asyncio.sleep(0.05)
    raise AssertionError("timed out waiting for the bot")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"REDIS_URL": "http://127.0.0.1:6379"}, "Ошибка настройки: REDIS_URL задана неверно"),
        (
            {"REDIS_URL": "redis://127.0.0.1:1/0"},
            "Ошибка: Redis по адресу из REDIS_URL не отвечает",
        ),
    ],
)
async def test_a_bad_or_silent_redis_stops_start_up(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    code, _, err = await run_bot(tmp_path, BOT_TOKEN="123456:TEST", **env)
    assert code == 2
    assert err.strip().splitlines()[-1].startswith(expected)
    assert "Traceback" not in err


async def test_bot_without_its_dispatcher_leaves_notifications_to_dispatchers(
    tmp_path: Path,
) -> None:
    """NOTIFY_IN_BOT=false (the scaled layout): the bot answers, the outbox waits for
    `python -m bot dispatcher`."""
    engine = create_engine(sqlite_url(tmp_path))
    try:
        await upgrade(engine)
        async with create_session_factory(engine)() as session:
            await factories.seed_school(session)
            session.add(factories.application(39744, 3, 10))
            await session.flush()
            application = await session.get(Application, 39744)
            assert application is not None
            assert (
                await notify_new_application(Repositories(session), application, now=factories.T0)
                == 2
            )
            await session.commit()
        async with FakeBotAPI() as api:
            api.add_user(2000, first_name="Незнакомец")
            env = {"BOT_TOKEN": api.token, "TELEGRAM_API_URL": api.url, "WEB_PORT": "0"}
            async with running(
                tmp_path, DATABASE_URL=sqlite_url(tmp_path), NOTIFY_IN_BOT="false", **env
            ) as bot:
                await bot.wait_for(lambda: bool(api.calls_of("deleteWebhook")))
                api.send_text(2000, "/start")
                await bot.wait_for(lambda: any(m.from_bot for m in api.chat(2000)))
                code = await bot.terminate()
            err = bot.stderr()
        assert code == 0, err
        assert "notifications are sent by `python -m bot dispatcher` (NOTIFY_IN_BOT=false)" in err
        assert "notification dispatcher started" not in err
        assert [call.params["chat_id"] for call in api.calls_of("sendMessage")] == [2000]
        async with engine.connect() as connection:
            states = list(await connection.scalars(select(OutboxMessage.state)))
        assert states == ["pending", "pending"]
    finally:
        await engine.dispose()
