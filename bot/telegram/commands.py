"""The command menu of a chat, following the active role (setMyCommands for the chat's scope)."""

from __future__ import annotations

import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BotCommand, BotCommandScopeChat

from bot.texts import linking as texts
from bot.texts.messengers import say
from services.domain import Role

log = logging.getLogger(__name__)


def chat_commands(role: Role) -> list[BotCommand]:
    return [
        BotCommand(command="menu", description=texts.COMMAND_MENU[role]),
        BotCommand(command="profile", description=texts.COMMAND_PROFILE),
        BotCommand(command="help", description=texts.COMMAND_HELP),
        BotCommand(command="logout", description=say(texts.COMMAND_LOGOUT, "telegram")),
    ]


async def set_chat_commands(bot: Bot, chat_id: int, role: Role | None) -> None:
    """Commands for the chat in the active role; None removes them (the chat is unlinked).

    A failure here leaves the previous commands, which is no reason to fail the update.
    """
    scope = BotCommandScopeChat(chat_id=chat_id)
    try:
        if role is None:
            await bot.delete_my_commands(scope=scope)
        else:
            await bot.set_my_commands(chat_commands(role), scope=scope)
    except TelegramAPIError as error:
        log.warning("could not set the commands of chat %s: %s", chat_id, type(error).__name__)
