"""/start and /help for a user whose Telegram is not yet linked to an account."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandStart
from aiogram.types import Message

from bot import texts
from bot.settings import Settings

router = Router(name="start")


@router.message(CommandStart())
async def start(message: Message, settings: Settings) -> None:
    await message.answer(texts.WELCOME_UNLINKED.format(ttl_minutes=settings.LINK_TOKEN_TTL // 60))


@router.message(Command("help"))
async def help_(message: Message) -> None:
    await message.answer(texts.HELP_UNLINKED)


@router.message(F.chat.type == "private")
async def anything_else(message: Message) -> None:
    await message.answer(texts.UNKNOWN_UNLINKED)
