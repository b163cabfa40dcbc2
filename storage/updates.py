"""Which messenger updates have been handled: an update is handled exactly once.

The messenger was told we received an update only after the update's transaction committed
(webhook: the 200 comes after the commit; polling: the offset moves past an update only then).
The record that an update was handled is written in that same transaction, so the record and
the update's effects commit together or not at all: a delivery that comes again (the messenger
did not see our answer, a process was killed, another replica got it) finds the record and is
skipped, and one whose first handling never committed is handled now.

An update is named by its messenger and its key there (`UpdateKey`: Telegram's update_id; for
MAX, whose updates have no id, the event's own id).

An update that failed (a bug, an answer the user was told could not be saved) is recorded in a
transaction of its own (`record_update`), so it is not handled again either.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.db import compiled_once, connection_of
from storage.models import ProcessedUpdate

# Written on every update (compiling it anew each time took about a tenth of a list update).
_MARK_HANDLED = compiled_once(
    ProcessedUpdate,
    "INSERT INTO processed_updates (messenger, key, received_at) "
    "VALUES (:messenger, :key, :received_at) "
    "ON CONFLICT (messenger, key) DO NOTHING",
)


@dataclass(frozen=True)
class UpdateKey:
    messenger: str
    key: str

    def __str__(self) -> str:
        return f"{self.messenger}:{self.key}"


async def was_handled(session: AsyncSession, update: UpdateKey) -> bool:
    """Whether the update's handling has committed (a plain read: takes no lock)."""
    found = await session.scalar(
        select(ProcessedUpdate.key).where(
            ProcessedUpdate.messenger == update.messenger, ProcessedUpdate.key == update.key
        )
    )
    return found is not None


async def mark_handled(session: AsyncSession, update: UpdateKey, now: datetime) -> bool:
    """Record, in the caller's transaction, that the update is handled; False if another
    handling of it recorded it first (the caller then rolls back: its work is a duplicate).

    On PostgreSQL a concurrent handling of the same update waits here for the other's commit.
    """
    connection = await connection_of(session)
    result = await connection.execute(
        _MARK_HANDLED, {"messenger": update.messenger, "key": update.key, "received_at": now}
    )
    return result.rowcount == 1


async def record_update(
    session_factory: async_sessionmaker[AsyncSession], update: UpdateKey, now: datetime
) -> bool:
    """Record the update in a transaction of its own; True if it was not recorded before."""
    async with session_factory() as session, session.begin():
        return await mark_handled(session, update, now)


async def prune_processed_updates(
    session_factory: async_sessionmaker[AsyncSession], received_before: datetime
) -> int:
    """Forget updates handled before the given time; returns how many rows went."""
    async with session_factory() as session, session.begin():
        result = await session.execute(
            delete(ProcessedUpdate).where(ProcessedUpdate.received_at < received_before)
        )
        assert isinstance(result, CursorResult)
        return result.rowcount
