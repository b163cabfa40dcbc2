"""/start and /help for a user whose Telegram is not yet linked to an account."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandStart
from aiogram.types import Message

from bot import texts
from bot.filters import Unlinked
from bot.settings import Settings


async def start(message: Message, settings: Settings) -> None:
    await message.answer(texts.WELCOME_UNLINKED.format(ttl_minutes=settings.LINK_TOKEN_TTL // 60))


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
