"""One MAX update through the conversation, and what became of it (bot/receipts.py): what
the webhook receiver and the polling loop both do with each update they take in."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.conversation.receipts import Handling, Receipt
from bot.conversation.runner import Runner
from bot.max.client import MaxClient
from bot.max.effects import MaxExecutor
from bot.max.updates import JsonDict, translate, update_identity

log = logging.getLogger(__name__)


@dataclass
class MaxFeed:
    """Feeds MAX updates to the runner; effects go out through `client`."""

    runner: Runner
    client: MaxClient
    bot_id: int

    async def __call__(self, update: JsonDict) -> Receipt:
        try:
            translated = translate(update, self.bot_id)
        except (KeyError, TypeError, ValueError):
            log.warning("MAX update %s is malformed; left alone", update_identity(update))
            return Receipt(Handling.IGNORED)
        if translated is None:
            return Receipt(Handling.IGNORED)
        try:
            executor = MaxExecutor(
                self.client,
                translated.chat_id,
                callback_id=translated.callback_id,
                origin=translated.origin,
            )
            return await self.runner.run(translated.incoming, executor)
        except Exception as error:  # the runner handles the conversation's failures; the rest
            # Only the identity and the exception type: update contents may hold personal data.
            log.error(
                "MAX update %s failed: %s",
                update_identity(update),
                type(error).__name__,
                exc_info=error,
            )
            return Receipt()
