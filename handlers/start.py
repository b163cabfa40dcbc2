"""/start and /help for a user whose Telegram is not yet linked to an account.

With an OpenID Connect provider configured, /start offers «Войти через Госуслуги» (bot first):
a one-time link to the service's sign-in page, opened as a Mini App so that the page learns from
Telegram who opened it. Without one it explains the portal-first way."""

from __future__ import annotations

from datetime import timedelta

from aiogram import F, Router
from aiogram.filters import Command, CommandStart
from aiogram.types import Message

from bot import keyboards, texts
from bot.filters import Unlinked
from bot.settings import Settings
from bot.texts import linking as link_texts
from services.clock import Clock
from services.linking import mint_bot_token
from storage.repositories import Repositories


async def start(message: Message, settings: Settings, repo: Repositories, clock: Clock) -> None:
    ttl_minutes = settings.LINK_TOKEN_TTL // 60
    user = message.from_user
    if not settings.bot_first_sign_in or user is None:
        await message.answer(texts.WELCOME_UNLINKED.format(ttl_minutes=ttl_minutes))
        return
    minted = await mint_bot_token(
        repo,
        telegram_user_id=user.id,
        chat_id=message.chat.id,
        ttl=timedelta(seconds=settings.LINK_TOKEN_TTL),
        clock=clock,
    )
    await message.answer(
        link_texts.WELCOME_BOT_FIRST.format(ttl_minutes=ttl_minutes),
        reply_markup=keyboards.sign_in(f"{settings.public_base}/link/{minted.token}"),
    )


async def help_(message: Message) -> None:
    await message.answer(texts.HELP_UNLINKED)


async def anything_else(message: Message) -> None:
    await message.answer(texts.UNKNOWN_UNLINKED)


def build_router() -> Router:
    router = Router(name="start")
    router.message.filter(Unlinked())
    router.message.register(start, CommandStart())
    router.message.register(help_, Command("help"))
    router.message.register(anything_else, F.chat.type == "private")
    return router
