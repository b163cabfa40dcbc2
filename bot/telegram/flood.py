"""Telegram's flood control (429 "retry after N") met by the bot's own replies.

The bot's replies share Telegram's limits (about 30 messages a second per bot, about one a second
per chat) with the notification dispatchers. A reply that meets a 429 is not lost: the request
waits the `retry_after` Telegram names and is made again (nothing was executed, so nothing is
sent twice), as long as the waits stay within a few seconds; a longer flood wait fails the update
as before. Without this, a burst of users (say, a push to many directors who all open the menu)
failed their updates — a decision rolled back, «Что-то пошло не так» instead of the card.

The notification dispatcher paces itself by the 429s it gets (bot/telegram/sender.py): it
sends inside `flood_errors_raised()`, and its requests get the 429 at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods.base import TelegramType

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.methods import Response, TelegramMethod

log = logging.getLogger(__name__)

# Seconds a reply may wait in total: a user still gets the answer a moment late, while the
# update's transaction and the user's lock stay held only briefly.
MAX_WAIT = 10.0

_raise_flood: ContextVar[bool] = ContextVar("raise_flood", default=False)


@contextmanager
def flood_errors_raised() -> Iterator[None]:
    """Requests made inside get a 429 as TelegramRetryAfter at once (the dispatcher's sends)."""
    token = _raise_flood.set(True)
    try:
        yield
    finally:
        _raise_flood.reset(token)


class FloodWait(BaseRequestMiddleware):
    """Waits out a 429 and makes the request again, up to `max_wait` seconds in total."""

    def __init__(self, max_wait: float = MAX_WAIT) -> None:
        self.max_wait = max_wait

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        waited = 0.0
        while True:
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as error:
                if _raise_flood.get() or waited + error.retry_after > self.max_wait:
                    raise
                log.warning(
                    "%s: flood control, retrying in %s s", type(method).__name__, error.retry_after
                )
                await asyncio.sleep(error.retry_after)
                waited += error.retry_after
