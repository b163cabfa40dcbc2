"""Carrying out a reply's effects through the Bot API, after the update's commit.

Every press is answered (answerCallbackQuery: with the Notice, or empty), first, so no button
spins. A screen goes in place of the pressed message (editMessageText with its keyboard);
«message is not modified» counts as success, and a message that can no longer be edited
(deleted, too old) is replaced by a new one, so a stale button never leads to a dead end.
Nothing here fails the update: the change is committed by now, and what Telegram refuses is
logged and passed over (a press answered too late, a prompt already deleted).
"""

from __future__ import annotations

import contextlib
import logging

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.types import BufferedInputFile

from bot.conversation.effects import (
    ChatExecutor,
    Document,
    Edit,
    Effect,
    Show,
    answer_of,
)
from bot.screens.markup import shorten
from bot.screens.screen import Screen
from bot.telegram.commands import set_chat_commands
from bot.telegram.render import EditScreen, markup, send_screen
from services.domain import Role

log = logging.getLogger(__name__)

NOT_MODIFIED = "message is not modified"
CANNOT_EDIT = ("message to edit not found", "message can't be edited", "MESSAGE_ID_INVALID")
ANSWER_LIMIT = 200  # characters of a callback answer


class TelegramExecutor(ChatExecutor[Bot, int]):
    """The effects of one update through the bot (`api`), in the chat it came from; a press's
    `callback_id` and `origin` (the pressed message's id)."""

    refused = (TelegramAPIError,)
    messenger = "Telegram"

    async def answer(self, effects: list[Effect]) -> Show | None:
        assert self.callback_id is not None
        notice = answer_of(effects)
        try:
            if notice is None:
                await self.api.answer_callback_query(self.callback_id)
            else:
                await self.api.answer_callback_query(
                    self.callback_id,
                    text=shorten(notice.text, ANSWER_LIMIT),
                    show_alert=True if notice.alert else None,
                )
        except TelegramAPIError as error:  # too late (a redelivered press): nothing to answer
            log.info("press in chat %s not answered: %s", self.chat_id, type(error).__name__)
        return None

    async def document(self, effect: Document) -> None:
        await self.api.send_document(
            self.chat_id,
            BufferedInputFile(effect.content, filename=effect.filename),
            caption=effect.caption or None,
        )

    async def commands(self, role: Role | None) -> None:
        await set_chat_commands(self.api, self.chat_id, role)

    async def send(self, screen: Screen) -> int:
        return await send_screen(self.api, self.chat_id, screen)

    async def edit(self, message_id: int, screen: Screen) -> bool:
        try:
            await self.api(
                EditScreen(
                    text=screen.text,
                    chat_id=self.chat_id,
                    message_id=message_id,
                    reply_markup=markup(self.api, screen),
                )
            )
        except TelegramBadRequest as error:
            if NOT_MODIFIED in error.message:
                return True
            if any(reason in error.message for reason in CANNOT_EDIT):
                log.info("message %s can no longer be edited, sending anew", message_id)
                return False
            raise
        return True

    async def edit_earlier(self, effect: Edit) -> None:
        # Not a Telegram message id, or no longer editable: the new screen says enough.
        with contextlib.suppress(ValueError):
            await self.edit(int(effect.message_id), effect.screen)

    async def remove(self, message_id: str) -> None:
        # Already gone, or not a Telegram message id: nothing to remove.
        with contextlib.suppress(TelegramBadRequest, ValueError):
            await self.api.delete_message(self.chat_id, int(message_id))
