"""The real `python -m bot` process: settings errors, and a run against the Bot API double."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from bot.settings import Settings
from tests.fakes.bot_api import FakeBotAPI

ROOT = Path(__file__).resolve().parents[1]


def bot_env(tmp_path: Path, **values: str) -> dict[str, str]:
    """A clean environment: no inherited bot settings, the project importable, data in tmp."""
    env = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
    env["PYTHONPATH"] = str(ROOT)
    env["DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    env.update(values)
    return env


SETTING_NAMES = set(Settings.model_fields)


async def run_bot(tmp_path: Path, *args: str, **env: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=tmp_path,
        env=bot_env(tmp_path, **env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_missing_bot_token_is_one_clear_line_and_exit_2(tmp_path: Path) -> None:
    code, _, err = await run_bot(tmp_path)
    assert code == 2
    assert err.strip().splitlines() == [
        "Ошибка настройки: BOT_TOKEN не задана — нужен токен бота вида 123456:ABC-DEF…; "
        "получите его у @BotFather в Telegram"
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


async def test_migrate_command(tmp_path: Path) -> None:
    code, out, _ = await run_bot(tmp_path, "migrate")
    assert code == 0
    assert "Миграции применены" in out
    assert (tmp_path / "bot.sqlite3").exists()


async def test_bot_process_answers_start_and_stops_on_sigterm(tmp_path: Path) -> None:
    async with FakeBotAPI() as api:
        api.add_user(2000, first_name="Незнакомец")
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            cwd=tmp_path,
            env=bot_env(tmp_path, BOT_TOKEN=api.token, TELEGRAM_API_URL=api.url, WEB_PORT="0"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            # deleteWebhook comes right before polling starts (a long poll is recorded on return)
            await wait_for(lambda: bool(api.calls_of("deleteWebhook")), process)
            assert [c["command"] for c in api.calls_of("setMyCommands")[0].params["commands"]][
                :2
            ] == ["start", "help"]
            api.send_text(2000, "/start")
            await wait_for(lambda: any(m.from_bot for m in api.chat(2000)), process)
            assert "привяжите Telegram" in api.last_bot_message(2000).text
            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), timeout=20)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        err = (await process.stderr.read()).decode() if process.stderr else ""
        assert code == 0, err
        assert "stopped" in err
        assert "Traceback" not in err


async def wait_for(condition: object, process: asyncio.subprocess.Process) -> None:
    """Wait up to a minute: starting Python and importing aiogram is slow on a loaded machine."""
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
