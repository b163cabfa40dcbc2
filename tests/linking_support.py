"""Helpers of the linking tests: accounts not yet linked, minting tokens, reading bindings, a
bot-first setup (the bot's web app with the sign-in pages on 127.0.0.1, an OIDC provider) and
a browser without JavaScript that does what the sign-in page's script does."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from html import unescape
from typing import Any
from urllib.parse import urljoin

from aiohttp import ClientSession, CookieJar, web
from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.process.app import link_pages
from bot.web.server import build_web_app, make_runner
from services.clock import Clock
from services.linking import mint_portal_token, snils_hash, unlink_account
from storage.models import Binding, LinkToken, OutboxMessage
from tests import factories
from tests.fakes.bot_api import FakeBotAPI
from tests.fakes.oidc.fake_provider import FakeOidcProvider
from tests.harness import SNILS_KEY, BotHarness, test_settings

# Accounts of the web module not linked to Telegram yet.
NEW_DIRECTOR = 8  # director and listener of org 10
NEW_DIRECTOR_NAME = "Смирнова Елена Павловна"
NEW_DIRECTOR_OID = "1000008"
NEW_DIRECTOR_SNILS = "112-233-445 95"
# The same SNILS in fullwidth digits: Python's \d and int() read it as 11223344595, the bot not.
FULLWIDTH_SNILS = "１１２-２３３-４４５ ９５"
NEW_LISTENER = 9  # listener of org 20
NEW_LISTENER_NAME = "Ковалёв Дмитрий Андреевич"
NO_ROLES = 11  # an account the web module gave no role

STRANGER = 2000  # a Telegram user not linked to anything (tests/conftest.py adds him)
STRANGER_2 = 2001


async def add_new_accounts(session_factory: async_sessionmaker[AsyncSession]) -> None:
    async with session_factory() as session:
        director = factories.account(NEW_DIRECTOR, NEW_DIRECTOR_NAME, 10, "director", "listener")
        director.esia_oid = NEW_DIRECTOR_OID
        director.snils_hash = snils_hash(NEW_DIRECTOR_SNILS, SNILS_KEY)
        session.add_all(
            [
                director,
                factories.account(NEW_LISTENER, NEW_LISTENER_NAME, 20, "listener"),
                factories.account(NO_ROLES, "Без Ролей Иванович", 10),
            ]
        )
        await session.commit()


async def mint(
    session_factory: async_sessionmaker[AsyncSession],
    account_id: int,
    clock: Clock,
    ttl: timedelta = timedelta(minutes=10),
) -> str:
    from storage.repositories import Repositories

    async with session_factory() as session:
        minted = await mint_portal_token(Repositories(session), account_id, ttl=ttl, clock=clock)
        await session.commit()
    return minted.token


async def revoke(
    session_factory: async_sessionmaker[AsyncSession],
    account_id: int,
    clock: Clock,
    messenger: str | None = None,
) -> list[Binding]:
    """The web module revokes the account's binding in `messenger` (DELETE
    /api/v1/accounts/{id}/messengers/<messenger>), every binding of it without one: what went."""
    from storage.repositories import Repositories

    async with session_factory() as session:
        removed = await unlink_account(
            Repositories(session), account_id, clock=clock, messenger=messenger
        )
        await session.commit()
    return removed


async def link_of(
    session_factory: async_sessionmaker[AsyncSession], telegram_user_id: int
) -> Binding | None:
    return await _binding(session_factory, Binding.user_id == telegram_user_id)


async def account_link(
    session_factory: async_sessionmaker[AsyncSession], account_id: int
) -> Binding | None:
    return await _binding(session_factory, Binding.account_id == account_id)


async def _binding(
    session_factory: async_sessionmaker[AsyncSession], condition: ColumnElement[bool]
) -> Binding | None:
    async with session_factory() as session:
        result = await session.execute(select(Binding).where(condition))
        return result.scalar_one_or_none()


async def outbox_rows(session_factory: async_sessionmaker[AsyncSession]) -> list[OutboxMessage]:
    async with session_factory() as session:
        return list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


async def token_rows(session_factory: async_sessionmaker[AsyncSession]) -> list[LinkToken]:
    async with session_factory() as session:
        return list(await session.scalars(select(LinkToken).order_by(LinkToken.id)))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


SIGN_IN_BUTTON = "Войти через Госуслуги"


@dataclass
class BotFirst:
    """The bot (harness) and its web app with the sign-in pages, at `public_url`."""

    harness: BotHarness
    public_url: str

    async def sign_in_url(self, user_id: int) -> str:
        """The user sends /start; the URL «Войти через Госуслуги» opens as a Mini App, with
        the launch data a Telegram client of that user gives it (signed now, by the clock)."""
        await self.harness.send(user_id, "/start")
        return self.open_button(user_id)

    def open_button(self, user_id: int, *, opened_by: int | None = None) -> str:
        """The URL the newest «Войти через Госуслуги» of `user_id`'s chat opens in the Telegram
        client of `opened_by` (by default the same user; another user: a forwarded button)."""
        url = self.harness.api.open_web_app(user_id, SIGN_IN_BUTTON, auth_date=self.auth_date())
        if opened_by is not None and opened_by != user_id:
            fragment = self.harness.api.launch_fragment(opened_by, auth_date=self.auth_date())
            url = f"{url.partition('#')[0]}#{fragment}"
        return url

    def auth_date(self) -> int:
        return int(self.harness.clock.now().timestamp())

    async def binding_of(self, telegram_user_id: int) -> Binding | None:
        return await link_of(self.harness.session_factory, telegram_user_id)

    async def account_binding(self, account_id: int) -> Binding | None:
        return await account_link(self.harness.session_factory, account_id)


@asynccontextmanager
async def bot_first(
    api: FakeBotAPI,
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
    clock: Clock,
    *,
    issuer: str,
    client_id: str,
    client_secret: str,
    port: int | None = None,
    **overrides: Any,
) -> AsyncIterator[BotFirst]:
    port = port or free_port()
    public_url = f"http://127.0.0.1:{port}"
    settings = test_settings(
        api,
        database_url,
        OIDC_ISSUER=issuer,
        OIDC_CLIENT_ID=client_id,
        OIDC_CLIENT_SECRET=client_secret,
        PUBLIC_URL=public_url,
        **overrides,
    )
    harness = BotHarness(api, settings, session_factory, clock)
    engine = session_factory.kw["bind"]
    app = build_web_app(engine, {})
    link_pages(settings, session_factory, harness.bot, clock, api.bot_username).register(app)
    runner: web.AppRunner = make_runner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield BotFirst(harness, public_url)
    finally:
        await runner.cleanup()
        await harness.close()


def bot_first_at(
    provider: FakeOidcProvider,
    api: FakeBotAPI,
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
    clock: Clock,
) -> AbstractAsyncContextManager[BotFirst]:
    """`bot_first` with the fake OIDC provider as the sign-in service."""
    return bot_first(
        api,
        database_url,
        session_factory,
        clock,
        issuer=provider.url,
        client_id=provider.client_id,
        client_secret=provider.client_secret,
    )


class Browser:
    """An HTTP client with its own cookies, as a browser would have; does what the launch
    page's script does (posts the URL's fragment) and remembers the CSRF token of the last
    confirmation page it was shown. The real page and script in Chromium: test_linking_e2e.py."""

    def __init__(self) -> None:
        self.http = ClientSession(cookie_jar=CookieJar(unsafe=True))
        self.csrf = ""

    async def close(self) -> None:
        await self.http.close()

    def _seen(self, status: int, html: str) -> tuple[int, str]:
        found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
        if found:
            self.csrf = found.group(1)
        return status, page_text(html)

    async def visit(self, url: str) -> tuple[int, str]:
        """Open a URL, following redirects; the status and the page's text."""
        async with self.http.get(url) as response:
            return self._seen(response.status, await response.text())

    async def location(self, url: str) -> str:
        async with self.http.get(url, allow_redirects=False) as response:
            return response.headers["Location"]

    async def launch(
        self, url: str, headers: dict[str, str] | None = None
    ) -> tuple[int, str, str | None]:
        """Load a sign-in link's page and post its fragment as the page's script does: the
        status and text of the answer, and where it moves on to (None: it stays)."""
        address, _, fragment = url.partition("#")
        async with self.http.get(address) as response:
            html = await response.text()
        form = re.search(r'<form id="launch" method="post" action="([^"]+)">', html)
        if response.status != 200 or form is None:
            return *self._seen(response.status, html), None
        assert f'<script src="{LAUNCH_SCRIPT}"></script>' in html
        target = urljoin(address, unescape(form.group(1)))
        async with self.http.post(target, data={"fragment": fragment}, headers=headers) as answer:
            html = await answer.text()
        onward = re.search(r'<meta http-equiv="refresh" content="0;url=([^"]+)">', html)
        status, text = self._seen(answer.status, html)
        return status, text, unescape(onward.group(1)) if onward else None

    async def open(self, url: str) -> tuple[int, str]:
        """Open a sign-in link as the Mini App does, all the way to where it ends."""
        status, text, onward = await self.launch(url)
        if onward is None:
            return status, text
        return await self.visit(onward)

    async def answer(
        self, flow: BotFirst, decision: str, csrf: str | None = None
    ) -> tuple[int, str]:
        """Press «Подтвердить» (confirm) or «Отмена» (cancel) on the confirmation page."""
        async with self.http.post(
            f"{flow.public_url}/link/confirm",
            data={"csrf": self.csrf if csrf is None else csrf, "decision": decision},
        ) as response:
            return response.status, page_text(await response.text())


LAUNCH_SCRIPT = "/link/launch.js"


def page_text(html: str) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", html))
