"""Helpers of the linking tests: accounts not yet linked, minting tokens, reading bindings, and a
bot-first setup (the bot's web app with the sign-in pages on 127.0.0.1, an OIDC provider)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.app import link_pages
from bot.web import build_web_app, make_runner
from services.clock import Clock
from services.linking import mint_portal_token, snils_hash
from storage.models import LinkToken, OutboxMessage, TelegramLink
from tests import factories
from tests.fakes.bot_api import FakeBotAPI
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
    ttl: timedelta = timedelta(minutes=15),
) -> str:
    from storage.repositories import Repositories

    async with session_factory() as session:
        minted = await mint_portal_token(Repositories(session), account_id, ttl=ttl, clock=clock)
        await session.commit()
    return minted.token


async def link_of(
    session_factory: async_sessionmaker[AsyncSession], telegram_user_id: int
) -> TelegramLink | None:
    async with session_factory() as session:
        result = await session.execute(
            select(TelegramLink).where(TelegramLink.telegram_user_id == telegram_user_id)
        )
        return result.scalar_one_or_none()


async def account_link(
    session_factory: async_sessionmaker[AsyncSession], account_id: int
) -> TelegramLink | None:
    async with session_factory() as session:
        result = await session.execute(
            select(TelegramLink).where(TelegramLink.account_id == account_id)
        )
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


@dataclass
class BotFirst:
    """The bot (harness) and its web app with the sign-in pages, at `public_url`."""

    harness: BotHarness
    public_url: str

    async def sign_in_url(self, user_id: int) -> str:
        """The user sends /start; the URL of «Войти через Госуслуги»."""
        reply = await self.harness.send(user_id, "/start")
        url: str = reply.button("Войти через Госуслуги")["url"]
        return url


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
