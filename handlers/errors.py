"""The error router: log the failure, tell the user briefly, never show internals."""

from __future__ import annotations

import logging

from aiogram import Bot, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import ErrorEvent

from bot import texts
from bot.receipts import Redeliver

log = logging.getLogger(__name__)


async def on_error(event: ErrorEvent, bot: Bot) -> bool:
    update = event.update
    if isinstance(event.exception, Redeliver):
        # Nothing was committed or recorded: Telegram delivers the update again, and the
        # user hears of it then.
        log.warning("update %s not handled, to be delivered again", update.update_id)
        return True
    # Only the update id and the exception: update contents may hold personal data.
    log.error(
        "update %s failed: %s",
        update.update_id,
        type(event.exception).__name__,
        exc_info=event.exception,
    )
    try:
        if update.callback_query is not None:
            await update.callback_query.answer(texts.SOMETHING_WENT_WRONG, show_alert=True)
        elif update.message is not None:
            await bot.send_message(update.message.chat.id, texts.SOMETHING_WENT_WRONG)
    except TelegramAPIError as error:
        log.warning("could not report the failure of update %s: %s", update.update_id, error)
    return True


def build_router() -> Router:
    router = Router(name="errors")
    router.errors.register(on_error)
    return router
