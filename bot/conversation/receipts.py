"""What became of an update: whether the messenger may be told we have it.

An update is acknowledged (webhook: 200; polling: the offset moves past it) only when its
handling committed, it was handled before, or it failed and that was recorded; otherwise the
messenger must deliver it again. `DbSessionMiddleware` fills the receipt that the webhook
receiver and the polling loop pass to `Dispatcher.feed_update(..., receipt=...)`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.clock import Clock
from services.locks import job_lock
from services.periodic import run_periodically
from storage.updates import prune_processed_updates

log = logging.getLogger(__name__)

# How long handled update ids are remembered: Telegram keeps an unconfirmed update for 24 hours
# and gives up redelivering to a webhook long before.
HANDLED_UPDATES_KEPT = timedelta(days=1)
PRUNE_INTERVAL_SECONDS = 3600.0


# The pauses of a polling loop after a failed poll or an update that must come again: doubled
# each time, within these bounds (seconds).
RETRY_PAUSE_SECONDS = (1.0, 30.0)


def longer(pause: float) -> float:
    """The next pause of a backoff: doubled, within RETRY_PAUSE_SECONDS."""
    shortest, longest = RETRY_PAUSE_SECONDS
    return min(longest, max(shortest, pause * 2))


class Handling(StrEnum):
    HANDLED = "handled"  # the update's transaction committed
    DUPLICATE = "duplicate"  # handled before (a redelivery): skipped
    FAILED = "failed"  # failed; recorded as handled, so it does not come again
    IGNORED = "ignored"  # nothing takes it (a group's message, an edit): nothing to do


@dataclass
class Receipt:
    outcome: Handling | None = None

    @property
    def acknowledged(self) -> bool:
        """Whether the messenger may be told we received the update."""
        return self.outcome is not None


class Redeliver(Exception):
    """The update could be neither handled nor recorded (the database is unavailable): nothing
    was committed, nobody was told anything, and the messenger must deliver it again."""


async def forget_handled_updates(
    session_factory: async_sessionmaker[AsyncSession], clock: Clock
) -> int:
    """Forget old update ids (in one process at a time); returns how many were forgotten."""
    async with job_lock(session_factory, "prune-processed-updates", clock=clock) as acquired:
        if not acquired:
            return 0
        return await prune_processed_updates(session_factory, clock.now() - HANDLED_UPDATES_KEPT)


async def forget_handled_updates_periodically(
    session_factory: async_sessionmaker[AsyncSession], clock: Clock, stop: asyncio.Event
) -> None:
    """The pruning job of a bot process, in either mode, until `stop` is set. A stop lets a
    run in progress end: cancelled inside its transaction (on SQLite waiting for the write
    lock), the run left its connection to be closed by a cancelled task, an error in the log."""

    async def forget() -> None:
        forgotten = await forget_handled_updates(session_factory, clock)
        if forgotten:
            log.info("forgot %d handled update ids", forgotten)

    await run_periodically(
        forget, stop, interval=PRUNE_INTERVAL_SECONDS, what="forgetting handled update ids"
    )
