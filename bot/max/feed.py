"""One MAX update through the conversation, and what became of it (bot/receipts.py): what
the webhook receiver and the polling loop both do with each update they take in."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy.exc import SQLAlchemyError

from bot.conversation.receipts import Handling, Receipt
from bot.conversation.runner import Runner
from bot.max.client import MaxClient
from bot.max.effects import MaxExecutor
from bot.max.updates import MESSENGER, JsonDict, translate, update_identity
from storage.updates import UpdateKey, record_update

log = logging.getLogger(__name__)

# How many handlings of one update may fail (not acknowledged) before it is recorded as failed
# and passed: an update that never gets through must not come again for ever (polling: it
# would hold the marker; a webhook's, MAX delivers again for 8 hours).
MAX_ATTEMPTS = 5

Feed = Callable[[JsonDict], Awaitable[Receipt]]
# Records an update as failed (handled: not handled again); False if it could not be recorded.
GiveUp = Callable[[JsonDict], Awaitable[bool]]


@dataclass
class MaxFeed:
    """Feeds MAX updates to the runner; effects go out through `client`."""

    runner: Runner
    client: MaxClient
    bot_id: int

    async def __call__(self, update: JsonDict) -> Receipt:
        try:
            translated = translate(update, self.bot_id)
        except Exception as error:  # any part of an update may be missing or of the wrong type
            # Only the identity and the exception type: update contents may hold personal data.
            log.warning(
                "MAX update %s is malformed (%s); ignored",
                update_identity(update),
                type(error).__name__,
            )
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
            return not_through(update, error)

    async def give_up(self, update: JsonDict) -> bool:
        """Record `update` as failed (bot/max/polling.py, after its handlings kept failing):
        it is not handled again. False if the record cannot be written."""
        identity = update_identity(update)
        if identity is None:
            return True  # nothing to record it under: the feed ignores it anyway
        key = UpdateKey(MESSENGER, identity)
        try:
            await record_update(self.runner.session_factory, key, self.runner.clock.now())
        except SQLAlchemyError as error:
            log.warning("MAX update %s could not be recorded: %s", identity, type(error).__name__)
            return False
        return True


@dataclass
class Attempts:
    """The failed handlings of each update, by identity, in polling and in webhook mode: after
    `attempts` of them `give_up` records it as failed and it is passed (acknowledged: the
    marker passes it, the webhook answers 200); without `give_up`, passed unrecorded. If the
    record cannot be written either (the database is away), it stays and is tried again:
    nothing is passed while nothing can be recorded."""

    give_up: GiveUp | None = None
    attempts: int = MAX_ATTEMPTS
    _failures: dict[str, int] = field(default_factory=dict)

    async def handle(self, feed: Feed, identity: str, update: JsonDict) -> Receipt:
        receipt = await fed(feed, update)
        if receipt.acknowledged:
            self._failures.pop(identity, None)
            return receipt
        failures = self._failures[identity] = self._failures.get(identity, 0) + 1
        if failures < self.attempts or not await self._recorded_as_failed(update):
            return receipt
        self._failures.pop(identity, None)
        log.error(
            "MAX update %s failed %d times; recorded as failed and passed", identity, failures
        )
        return Receipt(Handling.FAILED)

    async def _recorded_as_failed(self, update: JsonDict) -> bool:
        if self.give_up is None:
            return True
        try:
            return await self.give_up(update)
        except Exception as error:
            log.warning("MAX update could not be recorded as failed: %s", type(error).__name__)
            return False


async def fed(feed: Feed, update: JsonDict) -> Receipt:
    """`feed(update)`'s receipt; an exception that escapes it is a handling that did not get
    through (not acknowledged: the update comes again), never the end of the front end."""
    try:
        return await feed(update)
    except Exception as error:
        return not_through(update, error)


def not_through(update: JsonDict, error: Exception) -> Receipt:
    """A handling that failed outside the runner: logged, not acknowledged (it comes again)."""
    # Only the identity and the exception type: update contents may hold personal data.
    log.error(
        "MAX update %s failed: %s", update_identity(update), type(error).__name__, exc_info=error
    )
    return Receipt()
