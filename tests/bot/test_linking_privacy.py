"""No token, SNILS, ФИО or Telegram launch data in the logs: whole linking runs (portal first
with its refusals and throttling, a move asked of the bound owner, consent, profile, role
switch, /logout; bot first through the sign-in pages with its failures) are logged at DEBUG by
every logger, and the log is searched for them.

The loggers the service keeps quiet whatever LOG_LEVEL says (`bot.cli.main.QUIET_LOGGERS`:
SQLAlchemy's statement echo, which prints rows) are kept quiet here too; everything else logs
at DEBUG."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from urllib.parse import parse_qs

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.cli.main import QUIET_LOGGERS, quiet_loggers
from bot.telegram.sender import TelegramSender
from services.clock import ManualClock
from services.linking import new_token, normalize_snils
from tests.fakes.bot_api import FakeBotAPI
from tests.fakes.oidc.fake_provider import FakeOidcProvider
from tests.harness import BotHarness
from tests.linking_support import (
    NEW_DIRECTOR,
    NEW_DIRECTOR_NAME,
    NEW_DIRECTOR_SNILS,
    NEW_LISTENER,
    NEW_LISTENER_NAME,
    STRANGER,
    STRANGER_2,
    Browser,
    add_new_accounts,
    bot_first,
    link_of,
    mint,
)

pytestmark = pytest.mark.usefixtures("seeded")


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    quiet = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [logger.level for logger in quiet]
    quiet_loggers()
    for name in ["", *logging.root.manager.loggerDict]:
        if not any(name == q or name.startswith(f"{q}.") for q in QUIET_LOGGERS):
            caplog.set_level(logging.DEBUG, logger=name)  # caplog restores them afterwards
    yield caplog
    for logger, level in zip(quiet, levels, strict=True):
        logger.setLevel(level)


@pytest.fixture
async def provider() -> AsyncIterator[FakeOidcProvider]:
    async with FakeOidcProvider() as provider:
        yield provider


def assert_absent(caplog: pytest.LogCaptureFixture, secrets: dict[str, str]) -> None:
    records = "\n".join(
        f"{record.getMessage()} {record.args!r} {record.exc_text or ''} {record.__dict__!r}"
        for record in caplog.records
    )
    logged = caplog.text + records
    for what, value in secrets.items():
        assert value not in logged, f"{what} is in the log"


async def test_portal_first_runs_log_no_token_snils_or_name(
    debug_logs: pytest.LogCaptureFixture,
    harness: BotHarness,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> None:
    await add_new_accounts(session_factory)
    harness.api.add_user(STRANGER_2, first_name="Второй")
    token = await mint(session_factory, NEW_DIRECTOR, clock)
    other = await mint(session_factory, NEW_LISTENER, clock)
    unknown = new_token()

    await harness.send(STRANGER, f"/start {token}")
    await harness.press(STRANGER, "Ознакомился")
    await harness.press(STRANGER, "👤 Профиль / сменить роль")
    await harness.press(STRANGER, "🔁 Сменить роль")
    await harness.press(STRANGER, "Слушатель")
    await harness.send(STRANGER, f"/start {other}")  # asks to switch
    await harness.press(STRANGER, "Да, сменить учётную запись")
    await harness.send(STRANGER_2, f"/start {token}")  # used
    for _ in range(5):
        await harness.send(STRANGER_2, f"/start {unknown}")
    await harness.send(STRANGER_2, "/start broken-token")  # throttled
    await harness.send(STRANGER, "/logout")
    await harness.press(STRANGER, "Да, отвязать")
    assert await link_of(session_factory, STRANGER) is None
    # A leaked link of a bound account: its owner is asked, and allows.
    harness.api.add_user(STRANGER, first_name="Незнакомец", username="secret_handle")
    leaked = await mint(session_factory, 3, clock)
    await harness.send(STRANGER, f"/start {leaked}")
    await TelegramSender(harness.bot, harness.settings).worker(session_factory, clock).drain()
    await harness.press(1003, "✅ Разрешить")
    assert await link_of(session_factory, STRANGER) is not None
    harness.assert_no_errors()

    assert "linked to telegram user" in debug_logs.text  # the run was logged, and at DEBUG
    assert logging.getLogger("bot.conversation.linking").isEnabledFor(logging.DEBUG)
    assert_absent(
        debug_logs,
        {
            "token": token,
            "second token": other,
            "unknown token": unknown,
            "leaked token": leaked,
            "Telegram username": "secret_handle",
            "ФИО": NEW_DIRECTOR_NAME,
            "surname": NEW_DIRECTOR_NAME.split()[0],
            "second ФИО": NEW_LISTENER_NAME,
        },
    )


async def test_bot_first_runs_log_no_token_snils_or_name(
    debug_logs: pytest.LogCaptureFixture,
    api: FakeBotAPI,
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    provider: FakeOidcProvider,
) -> None:
    await add_new_accounts(session_factory)
    async with (
        bot_first(
            api,
            database_url,
            session_factory,
            clock,
            issuer=provider.url,
            client_id=provider.client_id,
            client_secret=provider.client_secret,
        ) as flow,
    ):
        browser = Browser()
        urls = []
        # Refused at the provider, no matching account, a spoilt ID token, then success.
        for claims, refuse, spoil in [
            ({}, True, None),
            ({"snils": "987-654-321 00"}, False, None),
            ({"snils": NEW_DIRECTOR_SNILS}, False, "nonce"),
            ({"snils": NEW_DIRECTOR_SNILS}, False, None),
        ]:
            urls.append(await flow.sign_in_url(STRANGER))
            provider.sign_in_as("person", **claims)
            if refuse:
                provider.refuse_next()
            if spoil:
                provider.spoil_next(spoil)
            await browser.open(urls[-1])
            clock.advance(seconds=1)
        await browser.open(f"{flow.public_url}/link/{new_token()}#{urls[-1].partition('#')[2]}")
        status, _ = await browser.answer(flow, "confirm")
        assert status == 200
        await browser.close()
        await flow.harness.press(STRANGER, "Ознакомился")
        flow.harness.assert_no_errors()
    link = await link_of(session_factory, STRANGER)
    assert link is not None
    assert link.account_id == NEW_DIRECTOR

    assert "linked to telegram user" in debug_logs.text
    assert "/link/callback" in debug_logs.text  # the access log is there, redacted
    secrets = {
        f"sign-in link {i}": url.partition("#")[0].rsplit("/", 1)[1] for i, url in enumerate(urls)
    }
    for i, url in enumerate(urls):  # the launch data Telegram signed, and its signature
        launch = parse_qs(parse_qs(url.partition("#")[2])["tgWebAppData"][0])
        secrets |= {f"launch data {i}": launch["user"][0], f"launch hash {i}": launch["hash"][0]}
    secrets |= {f"OIDC code {i}": code for i, code in enumerate(provider.issued_codes)}
    digits = normalize_snils(NEW_DIRECTOR_SNILS)
    assert digits is not None
    secrets |= {
        "SNILS": NEW_DIRECTOR_SNILS,
        "SNILS digits": digits,
        "unknown SNILS": "987-654-321 00",
        "ФИО": NEW_DIRECTOR_NAME,
        "surname": NEW_DIRECTOR_NAME.split()[0],
        "Telegram name": "Незнакомец",
    }
    assert_absent(debug_logs, secrets)
