"""The MAX conversation of an unlinked user through the real translation, runner and executor,
over HTTP to the MAX Bot API double: an update handled once, a stale press answered in one
request, no bot-first sign-in in MAX, and `link-token`'s links per messenger (the welcome and
help are test_bot_skeleton.py's, in each messenger)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import texts
from bot.cli.main import _link_token
from bot.conversation.intents import MenuAction, MenuIntent
from bot.conversation.receipts import Handling
from bot.max.effects import MaxExecutor
from bot.screens.screen import Button, Screen, rows
from services.clock import ManualClock
from tests import factories
from tests.fakes.bot_api import FakeBotAPI
from tests.fakes.max_api import FakeMaxAPI
from tests.max_harness import MaxHarness, max_settings

USER = factories.user_id_of(2000, "max")  # the stranger of tests/conftest.py's max_api


async def test_every_update_is_handled_once(max_harness: MaxHarness) -> None:
    update = max_harness.api.send_text(USER, "/help")
    max_harness.api.take_updates()
    first = await max_harness.feed(update)
    again = await max_harness.feed(update)  # a webhook redelivery, a repeated poll
    assert (first.outcome, again.outcome) == (Handling.HANDLED, Handling.DUPLICATE)
    sent = max_harness.api.calls_of("POST /messages")
    assert len(sent) == 1


async def test_a_stale_press_is_answered_in_one_request(max_harness: MaxHarness) -> None:
    await max_harness.start(USER)
    screen = Screen("Старое меню", rows(Button("Меню", MenuIntent(MenuAction.HOME))))
    await MaxExecutor(max_harness.client, max_harness.api.chat_id_of(USER)).send(screen)
    calls = len(max_harness.api.calls)
    await max_harness.press(USER, "Меню")
    assert len(max_harness.api.calls) == calls + 1  # POST /answers, nothing else
    answer = max_harness.api.calls[-1]
    assert answer.endpoint == "POST /answers"
    assert answer.ok
    assert max_harness.api.notifications(USER) == [texts.STALE_BUTTON]
    max_harness.assert_no_errors()


async def test_bot_first_sign_in_is_not_offered_in_max(
    max_api: FakeMaxAPI,
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> None:
    """MAX's launch data cannot be confirmed to prove who opened the page: the portal-first way."""
    settings = max_settings(
        max_api,
        database_url,
        OIDC_ISSUER="https://sso.example.ru/realms/esia",
        OIDC_CLIENT_ID="dpo-bot",
        PUBLIC_URL="https://bot.example.ru",
    )
    assert settings.bot_first_sign_in
    harness = MaxHarness(max_api, settings, session_factory, clock)
    try:
        welcome = await harness.start(USER)
    finally:
        await harness.close()
    assert welcome.text.startswith("Здравствуйте!")
    assert "Профиль" in welcome.text  # how to get the one-time link in the web module
    assert welcome.buttons() == []


async def test_link_token_prints_the_link_of_every_messenger_served(
    max_api: FakeMaxAPI,
    api: FakeBotAPI,
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with session_factory() as session:
        session.add(factories.organization(1))
        await session.flush()
        session.add(factories.account(50, "Директор Школы", 1, "director"))
        await session.commit()
    both = max_settings(max_api, database_url, BOT_TOKEN=api.token, TELEGRAM_API_URL=api.url)
    assert await _link_token(both, 50) == 0
    telegram, in_max, expiry = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"https://t\.me/dpo_test_bot\?start=[\w-]{32}", telegram)
    assert in_max.startswith(f"https://max.ru/{max_api.bot_username}?start=")
    assert in_max.rsplit("=", 1)[1] == telegram.rsplit("=", 1)[1]  # one token, two links
    assert expiry.startswith("Ссылка одноразовая")
    assert await _link_token(max_settings(max_api, database_url), 50) == 0
    only_max, _ = capsys.readouterr().out.splitlines()
    assert re.fullmatch(rf"https://max\.ru/{max_api.bot_username}\?start=[\w-]{{32}}", only_max)


@pytest.mark.usefixtures("seeded")
async def test_a_max_user_is_not_the_telegram_user_with_the_same_id(
    max_api: FakeMaxAPI,
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> None:
    """Telegram user 1001 is bound to account 1 (seed_school); MAX user 1001 is someone else."""
    max_api.add_user(1001, "Чужой")
    harness = MaxHarness(max_api, max_settings(max_api, database_url), session_factory, clock)
    try:
        reply = await harness.send(1001, "/menu")
    finally:
        await harness.close()
    assert reply.text.startswith("Сначала привяжите MAX")
    assert "Петров" not in reply.text
