"""End to end in MAX with the real `python -m bot`: MAX only, and MAX beside Telegram, against
both doubles. A director bound in MAX gets a new application's push there and approves it from
the push; the applicant, bound in Telegram, gets the push with the comment; the history says the
decision came from MAX; staff include it from MAX."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp import ClientSession
from sqlalchemy import select

from services.clock import SystemClock
from services.linking import unlink_account
from storage.db import create_engine, create_session_factory
from storage.migrate import upgrade
from storage.models import Account, ApplicationEvent
from storage.repositories import Repositories
from tests import factories
from tests.api_support import API_TOKEN, AUTH, application_body
from tests.fakes.bot_api import FakeBotAPI
from tests.fakes.max_api import FakeMaxAPI
from tests.harness import SNILS_KEY
from tests.processes import BotProcess, free_port

pytestmark = pytest.mark.slow

DIRECTOR, STAFF = 7_000_001, 7_000_007  # in MAX: accounts 1 and 7
APPLICANT = 1003  # in Telegram: account 3
NUMBER = 39744


async def seed(database_url: str, max_api: FakeMaxAPI) -> None:
    engine = create_engine(database_url)
    try:
        await upgrade(engine)
        async with create_session_factory(engine)() as session:
            await factories.seed_school(session)  # everyone bound in Telegram
            for account_id, user in ((1, DIRECTOR), (7, STAFF)):
                chat_id = max_api.chat_id_of(user)
                session.add(factories.binding(account_id, user, messenger="max", chat_id=chat_id))
            director = await session.get(Account, 1)
            assert director is not None
            director.push_to = "max"  # the director's pushes go to MAX
            await session.commit()
    finally:
        await engine.dispose()


def last_buttons(max_api: FakeMaxAPI, user: int) -> str:
    """The labels of the bot's newest message to the user ("" before the bot wrote)."""
    sent = [m for m in max_api.chat(user) if m.from_bot]
    return str(sent[-1].buttons()) if sent else ""


def last_text(max_api: FakeMaxAPI, user: int) -> str:
    sent = [m for m in max_api.chat(user) if m.from_bot]
    return sent[-1].text if sent else ""


async def events(database_url: str) -> list[ApplicationEvent]:
    engine = create_engine(database_url)
    try:
        async with create_session_factory(engine)() as session:
            return list(
                await session.scalars(select(ApplicationEvent).order_by(ApplicationEvent.id))
            )
    finally:
        await engine.dispose()


@pytest.mark.parametrize("with_telegram", [False, True], ids=["max-only", "max-and-telegram"])
async def test_a_decision_made_in_max_end_to_end(tmp_path: Path, with_telegram: bool) -> None:
    async with FakeMaxAPI(poll_timeout=1.0) as max_api, FakeBotAPI() as telegram:
        max_api.add_user(DIRECTOR, "Пётр", "Петров")
        max_api.add_user(STAFF, "Ольга", "Иванова")
        telegram.add_user(APPLICANT, first_name="Юлия")
        database_url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
        await seed(database_url, max_api)
        port = free_port()
        env = {
            "MAX_BOT_TOKEN": max_api.token,
            "MAX_API_URL": max_api.url,
            "DATABASE_URL": database_url,
            "SNILS_HASH_KEY": SNILS_KEY,
            "API_TOKEN": API_TOKEN,
            "WEB_PORT": str(port),
        }
        if with_telegram:
            env |= {"BOT_TOKEN": telegram.token, "TELEGRAM_API_URL": telegram.url}
        bot = await BotProcess.start(tmp_path, **env)
        try:
            await bot.wait_for(max_api.polled)
            async with ClientSession() as http:
                response = await http.put(
                    f"http://127.0.0.1:{port}/api/v1/applications/{NUMBER}",
                    json=application_body(),
                    headers=AUTH,
                )
                assert response.status in (200, 201), await response.text()

            # The director's push arrives in MAX, with its buttons.
            await bot.wait_for(lambda: any(f"№{NUMBER}" in m.text for m in max_api.chat(DIRECTOR)))
            push = max_api.last_bot_message(DIRECTOR)
            assert push.buttons()[0] == ["✅ Одобрить", "❌ Отменить"]
            # Approved from the push: a tap, then the comment.
            max_api.press(DIRECTOR, "✅ Одобрить", push.mid)
            await bot.wait_for(lambda: "Напишите комментарий" in max_api.message(push.mid).text)
            max_api.send_text(DIRECTOR, "Одобряю, ждём на диагностике")
            await bot.wait_for(
                lambda: any("одобрена" in m.text for m in max_api.chat(DIRECTOR) if m.from_bot)
            )
            assert max_api.unanswered_callbacks() == []

            if with_telegram:  # the applicant, bound in Telegram, is told there
                await bot.wait_for(
                    lambda: any(
                        "Одобряю, ждём на диагностике" in m.text
                        for m in telegram.chat(APPLICANT)
                        if m.from_bot
                    )
                )

            # Staff include it from MAX.
            max_api.send_text(STAFF, f"/start app_{NUMBER}")
            await bot.wait_for(lambda: "👥 Включить в группу" in last_buttons(max_api, STAFF))
            max_api.press(STAFF, "👥 Включить в группу")
            await bot.wait_for(lambda: "Без комментария" in last_buttons(max_api, STAFF))
            max_api.press(STAFF, "Без комментария")
            await bot.wait_for(lambda: "включена в группу" in last_text(max_api, STAFF))
            await asyncio.sleep(0.2)
            assert await bot.terminate() == 0
        finally:
            await bot.kill()
        assert "Traceback" not in bot.stderr()
        # The replies and the pushes of one process take turns in a dialog (bot/max/client.py):
        # not one 429, also where a press's answer and a push meet in the director's dialog.
        assert max_api.too_many_requests == 0

    decided = [(e.action, e.actor_account_id, e.source) for e in await events(database_url)]
    # The application came through the API; the decision and the inclusion from MAX.
    assert decided == [("create", None, "api"), ("approve", 1, "max"), ("include", 7, "max")]


async def test_python_m_bot_dispatcher_sends_the_max_rows(tmp_path: Path) -> None:
    """`python -m bot dispatcher` with MAX only: a row for a MAX chat (the operator's revocation
    telling the dialog) reaches MAX."""
    async with FakeMaxAPI(poll_timeout=1.0) as max_api:
        max_api.add_user(DIRECTOR, "Пётр", "Петров")
        max_api.add_user(STAFF, "Ольга", "Иванова")
        database_url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
        await seed(database_url, max_api)
        engine = create_engine(database_url)
        try:
            async with create_session_factory(engine)() as session:
                removed = await unlink_account(
                    Repositories(session), 1, clock=SystemClock(), messenger="max"
                )
                assert [b.messenger for b in removed] == ["max"]
                await session.commit()
        finally:
            await engine.dispose()
        env = {
            "MAX_BOT_TOKEN": max_api.token,
            "MAX_API_URL": max_api.url,
            "DATABASE_URL": database_url,
            "SNILS_HASH_KEY": SNILS_KEY,
        }
        dispatcher = await BotProcess.start(tmp_path, "dispatcher", **env)
        try:
            await dispatcher.wait_for(lambda: any(m.from_bot for m in max_api.chat(DIRECTOR)))
            assert await dispatcher.terminate() == 0
        finally:
            await dispatcher.kill()
        assert "Traceback" not in dispatcher.stderr()
        assert max_api.calls_of("GET /updates") == []  # the dispatcher does not take updates
