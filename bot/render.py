"""Showing a screen: edit the message in place after a button press, send one otherwise.

«message is not modified» counts as success; a message that can no longer be edited (deleted,
too old) is replaced by a new one, so a stale button never leads to a dead end.
"""

from __future__ import annotations

import logging

from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

log = logging.getLogger(__name__)

NOT_MODIFIED = "message is not modified"
CANNOT_EDIT = ("message to edit not found", "message can't be edited", "MESSAGE_ID_INVALID")

TEXT_LIMIT = 4096  # a message after entity parsing, in UTF-16 code units (texts.utf16_length)


async def show(
    event: Message | CallbackQuery, text: str, markup: InlineKeyboardMarkup | None = None
) -> Message | None:
    """Show a screen for the event: in place for a callback, as a new message for a message."""
    if isinstance(event, CallbackQuery):
        message = event.message
        if isinstance(message, Message):
            return await edit_or_send(message, text, markup)
        if event.from_user is None or event.bot is None:
            return None
        return await event.bot.send_message(event.from_user.id, text, reply_markup=markup)
    return await event.answer(text, reply_markup=markup)


async def edit_or_send(
    message: Message, text: str, markup: InlineKeyboardMarkup | None = None
) -> Message | None:
    try:
        edited = await message.edit_text(text, reply_markup=markup)
    except TelegramBadRequest as error:
        if NOT_MODIFIED in error.message:
            return message
        if not any(reason in error.message for reason in CANNOT_EDIT):
            raise
        log.info("message %s can no longer be edited, sending anew", message.message_id)
        return await message.answer(text, reply_markup=markup)
    return edited if isinstance(edited, Message) else message
