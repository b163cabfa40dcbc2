"""Bot-first sign-in: /start offers «Войти через Госуслуги» as a Mini App, the service's page
takes the launch data Telegram signed for the user who opened it, runs the OpenID Connect code
flow with PKCE against a provider double on 127.0.0.1, the person confirms, the bot writes in
the chat. A forwarded or copied link binds nothing: without launch data, or with another
user's, the page is refused. A browser is played by an aiohttp client with its own cookie jar
(tests/linking_support.Browser); every failure has its page (the real browser and the real
provider: test_linking_e2e.py)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from yarl import URL

from bot.web.oidc import COOKIE, LAUNCH_SCRIPT, LAUNCH_SCRIPT_PATH
from services.clock import ManualClock
from services.launch import LAUNCH_MAX_AGE
from services.linking import THROTTLE_LIMIT, new_token
from storage.models import Account, LinkToken
from tests import factories
from tests.fakes.bot_api import FakeBotAPI
from tests.fakes.oidc.fake_provider import FakeOidcProvider
from tests.linking_support import (
    NEW_DIRECTOR,
    NEW_DIRECTOR_NAME,
    NEW_DIRECTOR_OID,
    NEW_DIRECTOR_SNILS,
    NEW_LISTENER,
    STRANGER,
    STRANGER_2,
    BotFirst,
    Browser,
    add_new_accounts,
    bot_first,
    free_port,
    mint,
    token_rows,
)

pytestmark = pytest.mark.usefixtures("seeded")

CONSENT_TITLE = "Согласие на обработку персональных данных"
# STRANGER has no @username: the page names him by his id.
QUESTION = (
    f"Привязать Telegram-аккаунт id {STRANGER} (без имени пользователя) к учётной записи "
    f"{NEW_DIRECTOR_NAME}?"
)
NOT_LAUNCHED = "Откройте вход из Telegram"
OPEN_AGAIN = "Откройте вход заново"


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


@pytest.fixture
async def director_url(flow: BotFirst, provider: FakeOidcProvider) -> str:
    """The stranger's «Войти через Госуслуги» (sign_in_url), and the provider signs the new
    director in, by her ESIA oid."""
    url = await flow.sign_in_url(STRANGER)
    provider.sign_in_as("smirnova", esia_oid=NEW_DIRECTOR_OID)
    return url


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    browser = Browser()
    yield browser
    await browser.close()


async def test_sign_in_by_esia_oid_confirm_and_the_bot_writes(
    flow: BotFirst,
    provider: FakeOidcProvider,
    browser: Browser,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> None:
    url = await flow.sign_in_url(STRANGER)
    assert url.startswith(f"{flow.public_url}/link/")
    welcome = flow.harness.api.last_bot_message(STRANGER)
    assert "войдите через Госуслуги" in welcome.text
    assert welcome.button("Войти через Госуслуги")["web_app"] == {"url": url.partition("#")[0]}
    provider.sign_in_as("smirnova", esia_oid=NEW_DIRECTOR_OID)

    # The page: our one script, nothing inline, nothing from elsewhere, never framed.
    async with browser.http.get(url.partition("#")[0]) as response:
        assert response.status == 200
        html = await response.text()
        policy = response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "default-src 'none'" in policy
    assert "script-src 'self';" in policy
    assert "frame-ancestors 'none'" in policy
    assert re.findall(r"<script[^>]*>", html) == [f'<script src="{LAUNCH_SCRIPT_PATH}">']
    async with browser.http.get(f"{flow.public_url}{LAUNCH_SCRIPT_PATH}") as response:
        assert response.content_type == "text/javascript"
        assert await response.text() == LAUNCH_SCRIPT
    assert provider.authorization_requests == 0  # nothing before the launch data

    status, text, onward = await browser.launch(url)
    assert (status, "Переходим на страницу входа через Госуслуги" in text) == (200, True)
    assert onward is not None
    assert onward.startswith(f"{provider.url}/authorize?")
    cookie = browser.http.cookie_jar.filter_cookies(URL(flow.public_url + "/link/x"))[COOKIE]
    assert cookie.value
    # Opening the button again starts a fresh sign-in; the page shown last counts.
    clock.advance(seconds=1)
    status, page = await browser.open(flow.open_button(STRANGER))
    assert status == 200
    assert QUESTION in page
    assert "Подтвердить" in page
    assert "Отмена" in page
    assert await flow.binding_of(STRANGER) is None  # nothing before the confirmation

    status, page = await browser.answer(flow, "confirm")
    assert status == 200
    assert "Готово" in page
    signed_in, consent = [m for m in flow.harness.api.chat(STRANGER) if m.from_bot][-2:]
    assert signed_in.text == f"Вы вошли как {NEW_DIRECTOR_NAME}, роль «Руководитель ОО»."
    assert consent.text.startswith(CONSENT_TITLE)
    link = await flow.binding_of(STRANGER)
    assert link is not None
    assert (link.account_id, link.chat_id) == (NEW_DIRECTOR, STRANGER)
    [row] = await token_rows(session_factory)
    assert row.used_at is not None
    assert (row.username, row.launched_at, row.oidc_state_hash, row.browser_key_hash) == (
        None,
        None,
        None,
        None,
    )

    # The consent gate applies as after a portal-first link.
    menu = await flow.harness.press(STRANGER, "Ознакомился")
    assert menu.buttons()[0] == ["📥 Заявки (0 новых)"]
    # The link is spent.
    clock.advance(seconds=1)
    status, page = await browser.open(flow.open_button(STRANGER))
    assert (status, "Ссылка уже использована" in page) == (410, True)


async def test_a_forwarded_sign_in_button_binds_nothing(
    flow: BotFirst,
    provider: FakeOidcProvider,
    browser: Browser,
    clock: ManualClock,
) -> None:
    """The takeover as reported: a Telegram user named like the director forwards his button;
    the director opens it and signs in. Now the page refuses it in an ordinary browser and in
    the director's own Telegram, and, opened with the attacker's launch data, names the
    attacker's account by @username and id, never by the name he gave himself."""
    api = flow.harness.api
    api.add_user(STRANGER_2, first_name=NEW_DIRECTOR_NAME, username="helper_2001")
    forwarded = await flow.sign_in_url(STRANGER_2)
    provider.sign_in_as("smirnova", esia_oid=NEW_DIRECTOR_OID)

    # Opened in a browser (the link copied or forwarded as text): no launch data.
    status, page = await browser.open(forwarded.partition("#")[0])
    assert (status, NOT_LAUNCHED in page) == (403, True)
    assert "«Подключить Telegram»" in page  # the way that does not need the button
    # Opened from the forwarded button in the director's own Telegram: another user.
    status, page = await browser.open(flow.open_button(STRANGER_2, opened_by=STRANGER))
    assert (status, "Ссылка выдана другому Telegram-аккаунту" in page) == (403, True)
    # The attacker's launch data with another user put in: the signature no longer holds.
    tampered = forwarded.replace(f"%2522id%2522%253A{STRANGER_2}", f"%2522id%2522%253A{STRANGER}")
    assert tampered != forwarded
    status, page = await browser.open(tampered)
    assert (status, NOT_LAUNCHED in page) == (403, True)
    assert provider.authorization_requests == 0
    assert COOKIE not in browser.http.cookie_jar.filter_cookies(URL(flow.public_url + "/link/x"))

    # The attacker's own launch data, which his Telegram already used: refused too.
    own_browser = Browser()
    try:
        status, _, onward = await own_browser.launch(forwarded)
    finally:
        await own_browser.close()
    assert (status, onward is not None) == (200, True)
    status, page = await browser.open(forwarded)
    assert (status, OPEN_AGAIN in page) == (403, True)

    # Launch data he kept unused: the page names his account, not his display name.
    clock.advance(seconds=1)
    status, page = await browser.open(flow.open_button(STRANGER_2))
    assert status == 200
    assert (
        f"Привязать Telegram-аккаунт @helper_2001 (id {STRANGER_2}) к учётной записи "
        f"{NEW_DIRECTOR_NAME}?"
    ) in page
    assert page.count(NEW_DIRECTOR_NAME) == 1  # the account's ФИО only
    assert "Если ссылку вам прислал кто-то другой, нажмите «Отмена»" in page
    status, page = await browser.answer(flow, "cancel")
    assert status == 200
    assert await flow.binding_of(STRANGER_2) is None
    assert await flow.account_binding(NEW_DIRECTOR) is None


@pytest.mark.usefixtures("director_url")
async def test_stale_launch_data_and_a_post_from_another_site_are_refused(
    flow: BotFirst,
    provider: FakeOidcProvider,
    browser: Browser,
    clock: ManualClock,
) -> None:
    opened = flow.open_button(STRANGER)
    clock.advance(seconds=LAUNCH_MAX_AGE.total_seconds() + 1)  # the page was left open
    status, page = await browser.open(opened)
    assert (status, OPEN_AGAIN in page) == (403, True)
    status, page, _ = await browser.launch(
        flow.open_button(STRANGER), headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert (status, "Вход начат не со страницы сервиса" in page) == (403, True)
    assert provider.authorization_requests == 0
    # Launch data signed before the link was made cannot be for its button.
    early = flow.harness.api.launch_fragment(STRANGER, auth_date=flow.auth_date() - 120)
    clock.advance(minutes=1)
    await flow.sign_in_url(STRANGER)
    status, page = await browser.open(f"{flow.open_button(STRANGER).partition('#')[0]}#{early}")
    assert (status, OPEN_AGAIN in page) == (403, True)
    # The button as it is works.
    status, page = await browser.open(flow.open_button(STRANGER))
    assert (status, QUESTION in page) == (200, True)


async def test_guessing_links_on_the_page_is_throttled(
    flow: BotFirst,
    provider: FakeOidcProvider,
    browser: Browser,
    director_url: str,
) -> None:
    fragment = director_url.partition("#")[2]
    for _ in range(THROTTLE_LIMIT):
        status, page = await browser.open(f"{flow.public_url}/link/{new_token()}#{fragment}")
        assert (status, "Ссылка недействительна" in page) == (404, True)
    status, page = await browser.open(director_url)
    assert (status, "Слишком много попыток" in page) == (429, True)
    assert provider.authorization_requests == 0


async def test_sign_in_by_snils_when_no_oid_matches(
    flow: BotFirst,
    provider: FakeOidcProvider,
    browser: Browser,
) -> None:
    url = await flow.sign_in_url(STRANGER)
    provider.sign_in_as("x", esia_oid="unknown-oid", snils="11223344595")
    status, page = await browser.open(url)
    assert (status, QUESTION in page) == (200, True)
    status, page = await browser.answer(flow, "confirm")
    assert status == 200
    link = await flow.binding_of(STRANGER)
    assert link is not None
    assert link.account_id == NEW_DIRECTOR


async def test_cancel_binds_nothing_and_spends_the_link(
    flow: BotFirst,
    provider: FakeOidcProvider,
    browser: Browser,
    clock: ManualClock,
) -> None:
    url = await flow.sign_in_url(STRANGER)
    provider.sign_in_as("smirnova", snils=NEW_DIRECTOR_SNILS)
    await browser.open(url)
    status, page = await browser.answer(flow, "cancel")
    assert (status, "Привязка отменена" in page) == (200, True)
    assert await flow.binding_of(STRANGER) is None
    assert flow.harness.api.last_bot_message(STRANGER).text == (
        "Привязка отменена. Чтобы войти снова, отправьте /start."
    )
    clock.advance(seconds=1)
    status, page = await browser.open(flow.open_button(STRANGER))
    assert (status, "Ссылка уже использована" in page) == (410, True)


async def test_refused_at_the_provider_and_then_tried_again(
    flow: BotFirst,
    provider: FakeOidcProvider,
    browser: Browser,
    clock: ManualClock,
) -> None:
    url = await flow.sign_in_url(STRANGER)
    provider.refuse_next()
    status, page = await browser.open(url)
    assert (status, "Вход через Госуслуги не выполнен" in page) == (403, True)
    assert "Вход через Госуслуги не выполнен" in flow.harness.api.last_bot_message(STRANGER).text
    assert provider.token_requests == 0

    provider.sign_in_as("smirnova", esia_oid=NEW_DIRECTOR_OID)
    clock.advance(seconds=1)
    status, page = await browser.open(flow.open_button(STRANGER))
    assert (status, QUESTION in page) == (200, True)
    await browser.answer(flow, "confirm")
    assert await flow.binding_of(STRANGER) is not None


async def test_a_callback_from_another_browser_or_with_a_strange_state_is_refused(
    flow: BotFirst,
    provider: FakeOidcProvider,
    browser: Browser,
    director_url: str,
) -> None:
    _, _, authorize = await browser.launch(director_url)
    assert authorize is not None
    callback = await browser.location(authorize)
    assert callback.startswith(f"{flow.public_url}/link/callback?")

    other_browser = Browser()
    try:
        status, page = await other_browser.visit(callback)
    finally:
        await other_browser.close()
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
    assert await flow.binding_of(STRANGER) is None


async def test_forged_confirmation_is_refused(
    flow: BotFirst,
    browser: Browser,
    director_url: str,
) -> None:
    await browser.open(director_url)
    status, page = await browser.answer(flow, "confirm", csrf="0" * 64)
    assert (status, "Не удалось проверить вход" in page) == (400, True)
    other_browser = Browser()
    try:
        status, page = await other_browser.answer(flow, "confirm", csrf=browser.csrf)
    finally:
        await other_browser.close()
    assert (status, "Не удалось проверить вход" in page) == (400, True)
    assert await flow.binding_of(STRANGER) is None
    status, page = await browser.answer(flow, "confirm")
    assert status == 200


async def test_expired_unknown_and_malformed_links(
    flow: BotFirst,
    provider: FakeOidcProvider,
    browser: Browser,
    clock: ManualClock,
) -> None:
    url = await flow.sign_in_url(STRANGER)
    fragment = url.partition("#")[2]
    status, page = await browser.open(f"{flow.public_url}/link/{new_token()}#{fragment}")
    assert (status, "Ссылка недействительна" in page) == (404, True)
    status, page = await browser.open(f"{flow.public_url}/link/abc#{fragment}")
    assert (status, "Ссылка недействительна" in page) == (404, True)

    clock.advance(minutes=10)
    status, page = await browser.open(flow.open_button(STRANGER))
    assert (status, "Срок действия ссылки истёк" in page) == (410, True)
    assert "действует 10 мин" in page

    # Expiry between the start of the sign-in and the provider's answer.
    url = await flow.sign_in_url(STRANGER)
    provider.sign_in_as("smirnova", esia_oid=NEW_DIRECTOR_OID)
    _, _, authorize = await browser.launch(url)
    assert authorize is not None
    clock.advance(minutes=11)
    status, page = await browser.visit(authorize)
    assert (status, "Срок действия ссылки истёк" in page) == (410, True)


async def test_no_matching_account(
    flow: BotFirst,
    provider: FakeOidcProvider,
    browser: Browser,
) -> None:
    url = await flow.sign_in_url(STRANGER)
    provider.sign_in_as("nobody", esia_oid="999", snils="987-654-321 00")
    status, page = await browser.open(url)
    assert (status, "Учётная запись не найдена" in page) == (404, True)
    assert "не найдена в модуле «Организация ДПО»" in (
        flow.harness.api.last_bot_message(STRANGER).text
    )
    assert await flow.binding_of(STRANGER) is None


async def test_an_account_linked_to_another_telegram_user_is_not_taken_over(
    flow: BotFirst,
    provider: FakeOidcProvider,
    browser: Browser,
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    async with session_factory() as session:
        account = await session.get(Account, 3)
        assert account is not None
        account.esia_oid = "1000003"
        await session.commit()
    url = await flow.sign_in_url(STRANGER)
    provider.sign_in_as("voiskovaya", esia_oid="1000003")
    status, page = await browser.open(url)
    assert (status, "Учётная запись уже привязана" in page) == (409, True)
    assert "привязана к другому Telegram-аккаунту" in (
        flow.harness.api.last_bot_message(STRANGER).text
    )
    link = await flow.account_binding(3)
    assert link is not None
    assert link.user_id == 1003


async def test_the_telegram_user_linked_elsewhere_meanwhile(
    flow: BotFirst,
    browser: Browser,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    director_url: str,
) -> None:
    status, page = await browser.open(director_url)
    assert status == 200
    token = await mint(session_factory, NEW_LISTENER, clock)
    await flow.harness.send(STRANGER, f"/start {token}")  # linked portal first in between
    status, page = await browser.answer(flow, "confirm")
    assert (status, "Telegram уже привязан" in page) == (409, True)
    link = await flow.binding_of(STRANGER)
    assert link is not None
    assert link.account_id == NEW_LISTENER


@pytest.mark.parametrize("spoil", ["nonce", "signature", "audience"])
async def test_an_id_token_that_fails_the_checks_binds_nothing(
    spoil: str,
    flow: BotFirst,
    provider: FakeOidcProvider,
    browser: Browser,
    director_url: str,
) -> None:
    provider.spoil_next(spoil)
    status, page = await browser.open(director_url)
    assert (status, "Не удалось проверить ответ Госуслуг" in page) == (400, True)
    assert await flow.binding_of(STRANGER) is None


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
        status, page = await browser.open(url)
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
    assert first.partition("#")[0] != second.partition("#")[0]
    status, _ = await browser.open(first)
    assert status == 404
    rows: list[LinkToken] = await token_rows(session_factory)
    assert [(r.kind, r.user_id, r.username) for r in rows] == [("bot", STRANGER, None)]


async def test_the_binding_stands_when_the_chat_cannot_be_told(
    flow: BotFirst,
    browser: Browser,
    director_url: str,
) -> None:
    await browser.open(director_url)
    flow.harness.api.fail_next("sendMessage", error_code=502, chat_id=STRANGER)
    status, page = await browser.answer(flow, "confirm")
    assert (status, "Готово" in page) == (200, True)
    link = await flow.binding_of(STRANGER)
    assert link is not None
    assert link.account_id == NEW_DIRECTOR
    # The next /start shows what the message would have: the consent.
    reply = await flow.harness.send(STRANGER, "/start")
    assert reply.text.startswith(CONSENT_TITLE)


class OpenTransactions:
    """The Bot API calls (and the OIDC provider's requests) made while a database transaction
    was open on the engine: a page that awaits Telegram (its flood waits up to 10 s) or the
    provider holding a transaction holds its locks and a pooled connection that long."""

    def __init__(
        self, engine: AsyncEngine, api: FakeBotAPI, provider: FakeOidcProvider | None = None
    ) -> None:
        self.engine = engine.sync_engine
        self.open: set[int] = set()
        self.offending: list[str] = []
        self.calls: list[str] = []
        event.listen(self.engine, "begin", self.began)
        for name in ("commit", "rollback"):
            event.listen(self.engine, name, self.ended)
        api.observe(self.called)
        if provider is not None:
            provider.observers.append(self.requested)

    def began(self, connection: Any) -> None:
        self.open.add(id(connection))

    def ended(self, connection: Any) -> None:
        self.open.discard(id(connection))

    def called(self, call: Any) -> None:
        self.calls.append(call.method)
        if self.open:
            self.offending.append(call.method)

    def requested(self, path: str) -> None:
        self.calls.append(path)
        if self.open:
            self.offending.append(path)

    def close(self) -> None:
        event.remove(self.engine, "begin", self.began)
        for name in ("commit", "rollback"):
            event.remove(self.engine, name, self.ended)


async def test_the_pages_tell_the_chat_with_no_transaction_open(
    flow: BotFirst,
    provider: FakeOidcProvider,
    browser: Browser,
    engine: AsyncEngine,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> None:
    """Refused at the provider, refused for the account, cancelled, and confirmed for a person
    whose consent is accepted already (bound in MAX: the announcement ends in the main menu,
    whose count is read from the database): each message to the chat goes out after the page's
    transaction has ended, and so does every request to the provider (its discovery document
    fetched by the first sign-in page, the code's exchange)."""
    async with session_factory() as session:
        await factories.link(session, NEW_DIRECTOR, 7_000_808, "director", messenger="max")
        await session.commit()
    watch = OpenTransactions(engine, flow.harness.api, provider)
    try:
        url = await flow.sign_in_url(STRANGER)
        provider.refuse_next()
        await browser.open(url)
        clock.advance(seconds=1)
        provider.sign_in_as("nobody", esia_oid="999", snils="987-654-321 00")
        await browser.open(flow.open_button(STRANGER))
        provider.sign_in_as("smirnova", esia_oid=NEW_DIRECTOR_OID)
        for decision in ("cancel", "confirm"):
            clock.advance(seconds=1)
            await browser.open(await flow.sign_in_url(STRANGER))
            status, page = await browser.answer(flow, decision)
            assert status == 200
    finally:
        watch.close()
    assert "Готово" in page
    texts = [m.text for m in flow.harness.api.chat(STRANGER) if m.from_bot]
    assert "Вход через Госуслуги не выполнен" in texts[1]
    assert "Привязка отменена. Чтобы войти снова, отправьте /start." in texts
    assert "Главное меню" in texts[-1]
    assert watch.calls.count("sendMessage") >= 6
    assert "/.well-known/openid-configuration" in watch.calls
    assert "/token" in watch.calls
    assert watch.offending == []
