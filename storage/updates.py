"""Which Telegram updates the webhook replicas have taken in: a repeated update_id is skipped.

Telegram redelivers an update when it did not see our 200 in time, and with several replicas the
second delivery may reach another one; the insert-or-ignore on the primary key decides, in the
database, which delivery is processed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CursorResult, delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.db import upsert
from storage.models import ProcessedUpdate


async def record_update(
    session_factory: async_sessionmaker[AsyncSession], update_id: int, now: datetime
) -> bool:
    """Record the update; True for its first delivery, False if it was recorded before."""
    async with session_factory() as session, session.begin():
        statement = upsert(session, ProcessedUpdate).values(update_id=update_id, received_at=now)
        result = await session.execute(
            statement.on_conflict_do_nothing(index_elements=["update_id"])
        )
        assert isinstance(result, CursorResult)
        return result.rowcount == 1


async def prune_processed_updates(
    session_factory: async_sessionmaker[AsyncSession], received_before: datetime
) -> int:
    """Forget updates received before the given time; returns how many rows went."""
    async with session_factory() as session, session.begin():
        result = await session.execute(
            delete(ProcessedUpdate).where(ProcessedUpdate.received_at < received_before)
        )
        assert isinstance(result, CursorResult)
        return result.rowcount
