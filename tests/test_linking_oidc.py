"""Bot-first sign-in: /start offers «Войти через Госуслуги», the service's pages run the OpenID
Connect code flow with PKCE against a provider double on 127.0.0.1, the person confirms, the
bot writes in the chat. A browser is played by an aiohttp client with its own cookie jar; every
failure has its page (the real browser and the real provider: test_linking_e2e.py)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html import unescape

import pytest
from aiohttp import ClientSession, CookieJar
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.oidc import COOKIE
from services.clock import ManualClock
from services.linking import new_token
from storage.models import LinkToken
from tests.fakes.bot_api import FakeBotAPI
from tests.fakes.oidc.fake_provider import FakeOidcProvider
from tests.linking_support import (
    NEW_DIRECTOR,
    NEW_DIRECTOR_NAME,
    NEW_DIRECTOR_OID,
    NEW_DIRECTOR_SNILS,
    NEW_LISTENER,
    STRANGER,
    BotFirst,
    account_link,
    add_new_accounts,
    bot_first,
    free_port,
    link_of,
    mint,
    token_rows,
)

pytestmark = pytest.mark.usefixtures("seeded")

CONSENT_TITLE = "Согласие на обработку персональных данных"
QUESTION = f"Привязать Telegram-аккаунт Незнакомец к учётной записи {NEW_DIRECTOR_NAME}?"


@pytest.fixture(autouse=True)
async def new_accounts(seeded: None, session_factory: async_sessionmaker[AsyncSession]) -> None:
    await add_new_accounts(session_factory)


@pytest.fixture
async def provider() -> AsyncIterator[FakeOidcProvider]:
    async with FakeOidcProvider() as provider:
        yield provider


@pytest.fixture
async def flow(
    api: FakeBotAPI,
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    provider: FakeOidcProvider,
) -> AsyncIterator[BotFirst]:
    async with bot_first(
        api,
        database_url,
        session_factory,
        clock,
        issuer=provider.url,
        client_id=provider.client_id,
        client_secret=provider.client_secret,
    ) as flow:
        yield flow
        flow.harness.assert_no_errors()


class Browser:
    """An HTTP client with its own cookies, as a browser would have; remembers the CSRF token
    of the last confirmation page it was shown."""

    def __init__(self) -> None:
        self.http = ClientSession(cookie_jar=CookieJar(unsafe=True))
        self.csrf = ""

    async def visit(self, url: str) -> tuple[int, str]:
        """Open a URL, following redirects; the status and the page's text."""
        async with self.http.get(url) as response:
            html = await response.text()
            found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
            if found:
                self.csrf = found.group(1)
            return response.status, page_text(html)

    async def location(self, url: str) -> str:
        async with self.http.get(url, allow_redirects=False) as response:
            return response.headers["Location"]

    async def answer(
        self, flow: BotFirst, decision: str, csrf: str | None = None
    ) -> tuple[int, str]:
        """Press «Подтвердить» (confirm) or «Отмена» (cancel) on the confirmation page."""
        async with self.http.post(
            f"{flow.public_url}/link/confirm",
            data={"csrf": self.csrf if csrf is None else csrf, "decision": decision},
        ) as response:
            return response.status, page_text(await response.text())


def page_text(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", html))


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    browser = Browser()
    yield browser
    await browser.http.close()


async def test_sign_in_by_esia_oid_confirm_and_the_bot_writes(
    flow: BotFirst,
    provider: FakeOidcProvider,
    browser: Browser,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    url = await flow.sign_in_url(STRANGER)
    assert url.startswith(f"{flow.public_url}/link/")
    welcome = flow.harness.api.last_bot_message(STRANGER)
    assert "войдите через Госуслуги" in welcome.text
    provider.sign_in_as("smirnova", esia_oid=NEW_DIRECTOR_OID)
    async with browser.http.get(url) as response:
        assert response.status == 200
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["Referrer-Policy"] == "no-referrer"
        cookie = response.history[0].cookies[COOKIE]
        assert cookie["httponly"]
        assert cookie["samesite"] == "Lax"
    # Opening the link again starts a fresh sign-in; the page shown last counts.
    status, page = await browser.visit(url)
    assert status == 200
    assert QUESTION in page
    assert "Подтвердить" in page
    assert "Отмена" in page
    assert await link_of(session_factory, STRANGER) is None  # nothing before the confirmation

    status, page = await browser.answer(flow, "confirm")
    assert status == 200
    assert "Готово" in page
    signed_in, consent = [m for m in flow.harness.api.chat(STRANGER) if m.from_bot][-2:]
    assert signed_in.text == f"Вы вошли как {NEW_DIRECTOR_NAME}, роль «Руководитель ОО»."
    assert consent.text.startswith(CONSENT_TITLE)
    link = await link_of(session_factory, STRANGER)
    assert link is not None
    assert (link.account_id, link.chat_id) == (NEW_DIRECTOR, STRANGER)
    [row] = await token_rows(session_factory)
    assert row.used_at is not None
    assert (row.telegram_name, row.oidc_state_hash, row.browser_key_hash) == (None, None, None)

    # The consent gate applies as after a portal-first link.
    menu = await flow.harness.press(STRANGER, "Ознакомился")
    assert menu.buttons()[0] == ["📥 Заявки (0 новых)"]
    # The link is spent.
    status, page = await browser.visit(url)
    assert (status, "Ссылка уже использована" in page) == (410, True)


async def test_sign_in_by_snils_when_no_oid_matches(
    flow: BotFirst,
    provider: FakeOidcProvider,
    browser: Browser,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    url = await flow.sign_in_url(STRANGER)
    provider.sign_in_as("x", esia_oid="unknown-oid", snils="11223344595")
    status, page = await browser.visit(url)
    assert (status, QUESTION in page) == (200, True)
    status, page = await browser.answer(flow, "confirm")
    assert status == 200
    link = await link_of(session_factory, STRANGER)
    assert link is not None
    assert link.account_id == NEW_DIRECTOR


async def test_cancel_binds_nothing_and_spends_the_link(
    flow: BotFirst,
    provider: FakeOidcProvider,
    browser: Browser,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    url = await flow.sign_in_url(STRANGER)
    provider.sign_in_as("smirnova", snils=NEW_DIRECTOR_SNILS)
    await browser.visit(url)
    status, page = await browser.answer(flow, "cancel")
    assert (status, "Привязка отменена" in page) == (200, True)
    assert await link_of(session_factory, STRANGER) is None
    assert flow.harness.api.last_bot_message(STRANGER).text == (
        "Привязка отменена. Чтобы войти снова, отправьте /start."
    )
    status, page = await browser.visit(url)
    assert (status, "Ссылка уже использована" in page) == (410, True)


async def test_refused_at_the_provider_and_then_tried_again(
    flow: BotFirst,
    provider: FakeOidcProvider,
    browser: Browser,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    url = await flow.sign_in_url(STRANGER)
    provider.refuse_next()
    status, page = await browser.visit(url)
    assert (status, "Вход через Госуслуги не выполнен" in page) == (403, True)
    assert "Вход через Госуслуги не выполнен" in flow.harness.api.last_bot_message(STRANGER).text
    assert provider.token_requests == 0

    provider.sign_in_as("smirnova", esia_oid=NEW_DIRECTOR_OID)
    status, page = await browser.visit(url)
    assert (status, QUESTION in page) == (200, True)
    await browser.answer(flow, "confirm")
    assert await link_of(session_factory, STRANGER) is not None


async def test_a_callback_from_another_browser_or_with_a_strange_state_is_refused(
    flow: BotFirst,
    provider: FakeOidcProvider,
    browser: Browser,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    url = await flow.sign_in_url(STRANGER)
    provider.sign_in_as("smirnova", esia_oid=NEW_DIRECTOR_OID)
    callback = await browser.location(await browser.location(url))
    assert callback.startswith(f"{flow.public_url}/link/callback?")

    other_browser = Browser()
    try:
        status, page = await other_browser.visit(callback)
    finally:
        await other_browser.http.close()
    assert (status, "Не удалось проверить вход" in page) == (400, True)
    strange = re.sub(r"state=[^&]+", f"state={new_token()}", callback)
    status, page = await browser.visit(strange)
    assert (status, "Не удалось проверить вход" in page) == (400, True)
    status, page = await browser.visit(f"{flow.public_url}/link/callback")
    assert status == 400
    assert provider.token_requests == 0

    # The right browser goes on; the same answer replayed is refused.
    status, page = await browser.visit(callback)
    assert (status, QUESTION in page) == (200, True)
    status, page = await browser.visit(callback)
    assert (status, "Не удалось проверить вход" in page) == (400, True)
    assert await link_of(session_factory, STRANGER) is None


async def test_forged_confirmation_is_refused(
    flow: BotFirst,
    provider: FakeOidcProvider,
    browser: Browser,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    url = await flow.sign_in_url(STRANGER)
    provider.sign_in_as("smirnova", esia_oid=NEW_DIRECTOR_OID)
    await browser.visit(url)
    status, page = await browser.answer(flow, "confirm", csrf="0" * 64)
    assert (status, "Не удалось проверить вход" in page) == (400, True)
    other_browser = Browser()
    try:
        status, page = await other_browser.answer(flow, "confirm", csrf=browser.csrf)
    finally:
        await other_browser.http.close()
    assert (status, "Не удалось проверить вход" in page) == (400, True)
    assert await link_of(session_factory, STRANGER) is None
    status, page = await browser.answer(flow, "confirm")
    assert status == 200


async def test_expired_unknown_and_malformed_links(
    flow: BotFirst,
    provider: FakeOidcProvider,
    browser: Browser,
    clock: ManualClock,
) -> None:
    status, page = await browser.visit(f"{flow.public_url}/link/{new_token()}")
    assert (status, "Ссылка недействительна" in page) == (404, True)
    status, page = await browser.visit(f"{flow.public_url}/link/abc")
    assert (status, "Ссылка недействительна" in page) == (404, True)

    url = await flow.sign_in_url(STRANGER)
    clock.advance(minutes=15)
    status, page = await browser.visit(url)
    assert (status, "Срок действия ссылки истёк" in page) == (410, True)
    assert "действует 15 мин" in page

    # Expiry between the start of the sign-in and the provider's answer.
    url = await flow.sign_in_url(STRANGER)
    provider.sign_in_as("smirnova", esia_oid=NEW_DIRECTOR_OID)
    authorize = await browser.location(url)
    clock.advance(minutes=16)
    status, page = await browser.visit(authorize)
    assert (status, "Срок действия ссылки истёк" in page) == (410, True)


async def test_no_matching_account(
    flow: BotFirst,
    provider: FakeOidcProvider,
    browser: Browser,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    url = await flow.sign_in_url(STRANGER)
    provider.sign_in_as("nobody", esia_oid="999", snils="987-654-321 00")
    status, page = await browser.visit(url)
    assert (status, "Учётная запись не найдена" in page) == (404, True)
    assert "не найдена в модуле «Организация ДПО»" in (
        flow.harness.api.last_bot_message(STRANGER).text
    )
    assert await link_of(session_factory, STRANGER) is None


async def test_an_account_linked_to_another_telegram_user_is_not_taken_over(
    flow: BotFirst,
    provider: FakeOidcProvider,
    browser: Browser,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> None:
    async with session_factory() as session:
        from storage.models import Account

        account = await session.get(Account, 3)
        assert account is not None
        account.esia_oid = "1000003"
        await session.commit()
    url = await flow.sign_in_url(STRANGER)
    provider.sign_in_as("voiskovaya", esia_oid="1000003")
    status, page = await browser.visit(url)
    assert (status, "Учётная запись уже привязана" in page) == (409, True)
    assert "привязана к другому Telegram-аккаунту" in (
        flow.harness.api.last_bot_message(STRANGER).text
    )
    link = await account_link(session_factory, 3)
    assert link is not None
    assert link.telegram_user_id == 1003


async def test_the_telegram_user_linked_elsewhere_meanwhile(
    flow: BotFirst,
    provider: FakeOidcProvider,
    browser: Browser,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> None:
    url = await flow.sign_in_url(STRANGER)
    provider.sign_in_as("smirnova", esia_oid=NEW_DIRECTOR_OID)
    status, page = await browser.visit(url)
    assert status == 200
    token = await mint(session_factory, NEW_LISTENER, clock)
    await flow.harness.send(STRANGER, f"/start {token}")  # linked portal first in between
    status, page = await browser.answer(flow, "confirm")
    assert (status, "Telegram уже привязан" in page) == (409, True)
    link = await link_of(session_factory, STRANGER)
    assert link is not None
    assert link.account_id == NEW_LISTENER


@pytest.mark.parametrize("spoil", ["nonce", "signature", "audience"])
async def test_an_id_token_that_fails_the_checks_binds_nothing(
    spoil: str,
    flow: BotFirst,
    provider: FakeOidcProvider,
    browser: Browser,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    url = await flow.sign_in_url(STRANGER)
    provider.sign_in_as("smirnova", esia_oid=NEW_DIRECTOR_OID)
    provider.spoil_next(spoil)
    status, page = await browser.visit(url)
    assert (status, "Не удалось проверить ответ Госуслуг" in page) == (400, True)
    assert await link_of(session_factory, STRANGER) is None


async def test_provider_unavailable_and_not_configured(
    api: FakeBotAPI,
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    browser: Browser,
) -> None:
    async with bot_first(
        api,
        database_url,
        session_factory,
        clock,
        issuer=f"http://127.0.0.1:{free_port()}",  # nobody listens there
        client_id="dpo-bot",
        client_secret="secret",
    ) as flow:
        url = await flow.sign_in_url(STRANGER)
        status, page = await browser.visit(url)
        assert (status, "Сервис входа недоступен" in page) == (502, True)

    # Without an OIDC provider the bot explains the portal-first way, and so does the page.
    async with bot_first(
        api,
        database_url,
        session_factory,
        clock,
        issuer="http://127.0.0.1:9",
        client_id="",
        client_secret="",
    ) as flow:
        reply = await flow.harness.send(STRANGER, "/start")
        assert reply.buttons() == []
        assert "«Подключить Telegram»" in reply.text
        status, page = await browser.visit(f"{flow.public_url}/link/{new_token()}")
        assert (status, "Вход через Госуслуги не настроен" in page) == (503, True)


async def test_start_revokes_the_earlier_sign_in_link(
    flow: BotFirst, browser: Browser, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    first = await flow.sign_in_url(STRANGER)
    second = await flow.sign_in_url(STRANGER)
    assert first != second
    status, _ = await browser.visit(first)
    assert status == 404
    rows: list[LinkToken] = await token_rows(session_factory)
    assert [(r.kind, r.telegram_user_id, r.telegram_name) for r in rows] == [
        ("bot", STRANGER, "Незнакомец")
    ]


async def test_the_binding_stands_when_the_chat_cannot_be_told(
    flow: BotFirst,
    provider: FakeOidcProvider,
    browser: Browser,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    url = await flow.sign_in_url(STRANGER)
    provider.sign_in_as("smirnova", esia_oid=NEW_DIRECTOR_OID)
    await browser.visit(url)
    flow.harness.api.fail_next("sendMessage", error_code=502, chat_id=STRANGER)
    status, page = await browser.answer(flow, "confirm")
    assert (status, "Готово" in page) == (200, True)
    link = await link_of(session_factory, STRANGER)
    assert link is not None
    assert link.account_id == NEW_DIRECTOR
    # The next /start shows what the message would have: the consent.
    reply = await flow.harness.send(STRANGER, "/start")
    assert reply.text.startswith(CONSENT_TITLE)
