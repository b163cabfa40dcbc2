"""`python -m bot link-token ACCOUNT_ID` and `python -m bot unlink ACCOUNT_ID` as an operator
runs them: a real process, the bot's username from getMe of the Bot API double, the link
redeemed in the chat afterwards; an operator's revocation frees a bound account."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.cli.main import _link_token, main
from services.clock import ManualClock
from services.linking import UNLINKED_KIND
from tests.fakes.bot_api import FakeBotAPI
from tests.harness import BotHarness, test_settings
from tests.linking_support import (
    NEW_DIRECTOR,
    STRANGER,
    add_new_accounts,
    link_of,
    mint,
    outbox_rows,
    token_rows,
)
from tests.processes import run_bot

pytestmark = pytest.mark.usefixtures("seeded")


async def test_link_token_prints_a_one_time_link_that_binds(
    tmp_path: Path,
    api: FakeBotAPI,
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
    harness: BotHarness,
) -> None:
    await add_new_accounts(session_factory)
    env = {"BOT_TOKEN": api.token, "TELEGRAM_API_URL": api.url, "DATABASE_URL": database_url}
    code, out, err = await run_bot(tmp_path, "link-token", str(NEW_DIRECTOR), **env)
    assert code == 0, err
    link_line, expiry_line = out.splitlines()
    found = re.fullmatch(r"https://t\.me/dpo_test_bot\?start=([A-Za-z0-9_-]{32})", link_line)
    assert found is not None
    found_expiry = re.fullmatch(
        r"Ссылка одноразовая, действует до (\d\d\.\d\d\.\d{4} \d\d:\d\d) "
        r"по времени Екатеринбурга, UTC\+5\.",
        expiry_line,
    )
    assert found_expiry is not None
    [row] = await token_rows(session_factory)
    local = row.expires_at.astimezone(ZoneInfo("Asia/Yekaterinburg"))
    assert found_expiry.group(1) == f"{local:%d.%m.%Y %H:%M}"
    assert row.expires_at - row.created_at == timedelta(minutes=10)
    assert found.group(1) not in str(row.__dict__)  # only the hash is stored
    assert found.group(1) not in err  # nor logged

    # The link works once (the harness's clock is not the system's: move it to the minting).
    harness.clock.set(row.created_at + timedelta(seconds=1))  # type: ignore[attr-defined]
    reply = await harness.send(STRANGER, f"/start {found.group(1)}")
    assert reply.text.startswith("Согласие на обработку персональных данных")
    link = await link_of(session_factory, STRANGER)
    assert link is not None
    assert link.account_id == NEW_DIRECTOR


async def test_link_token_for_an_unknown_account(
    api: FakeBotAPI, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await _link_token(test_settings(api, database_url), 999)
    out, err = capsys.readouterr()
    assert (code, out, err) == (1, "", "Учётная запись 999 не найдена.\n")


def test_link_token_needs_the_bot_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BOT_TOKEN", raising=False)
    monkeypatch.delenv("MAX_BOT_TOKEN", raising=False)
    assert main(["link-token", "1"]) == 2
    assert "не задан ни BOT_TOKEN (Telegram), ни MAX_BOT_TOKEN (MAX)" in capsys.readouterr().err


def test_local_time_of_the_expiry_is_the_configured_zone() -> None:
    # 06:00 UTC is 11:00 in Yekaterinburg (UTC+5, no daylight saving).
    moment = datetime(2026, 9, 1, 6, 0, tzinfo=ZoneInfo("UTC"))
    assert f"{moment.astimezone(ZoneInfo('Asia/Yekaterinburg')):%H:%M}" == "11:00"


async def test_unlink_revokes_a_binding_and_frees_the_account(
    tmp_path: Path,
    api: FakeBotAPI,
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
    harness: BotHarness,
    clock: ManualClock,
) -> None:
    env = {"DATABASE_URL": database_url}
    code, out, err = await run_bot(tmp_path, "unlink", "3", "--messenger", "max", **env)
    assert (code, out.strip(), err) == (0, "Учётная запись 3 не привязана к MAX.", "")
    assert await link_of(session_factory, 1003) is not None  # its Telegram binding stays
    code, out, err = await run_bot(tmp_path, "unlink", "3", **env)
    assert (code, out.strip(), err) == (
        0,
        "Привязка Telegram учётной записи 3 снята, чат получит сообщение об этом.",
        "",
    )
    assert await link_of(session_factory, 1003) is None
    rows = await outbox_rows(session_factory)
    assert [(r.kind, r.chat_id, r.payload) for r in rows] == [
        (UNLINKED_KIND, 1003, {"reason": "revoked"})
    ]
    code, out, _ = await run_bot(tmp_path, "unlink", "3", **env)
    assert (code, out.strip()) == (0, "Учётная запись 3 не привязана ни к одному мессенджеру.")
    code, _, err = await run_bot(tmp_path, "unlink", "999", **env)
    assert (code, err.strip()) == (1, "Учётная запись 999 не найдена.")
    # The account is free: a new link binds another Telegram user at once.
    token = await mint(session_factory, 3, clock)
    reply = await harness.send(STRANGER, f"/start {token}")
    assert reply.text.startswith("Согласие на обработку персональных данных")
