"""One Telegram update fed to the Dispatcher, and what became of it
(bot/conversation/receipts.py): what the webhook receiver and the polling loop both do with each
update they take in."""

from __future__ import annotations

import logging

from aiogram import Bot, Dispatcher
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.methods import TelegramMethod
from aiogram.types import Update

from bot.conversation.receipts import Handling, Receipt

log = logging.getLogger(__name__)


async def feed(dp: Dispatcher, bot: Bot, update: Update) -> Receipt:
    receipt = Receipt()
    try:
        result = await dp.feed_update(bot, update, receipt=receipt)
        if result is UNHANDLED and receipt.outcome is None:
            receipt.outcome = Handling.IGNORED
        if isinstance(result, TelegramMethod):
            await dp.silent_call_request(bot, result)
    except Exception as error:  # the runner handles the conversation's failures; this is the rest
        # Only the update id and the exception type: update contents may hold personal data.
        log.error("update %s failed: %s", update.update_id, type(error).__name__, exc_info=error)
    return receipt
