"""A bot's long polling marker, kept across restarts (table `poll_markers`, by messenger and bot
id): MAX confirms every update before the marker a poll passes, and a poll without one may get
only the latest update (docs/MAX.md), so a restarted process asks with the marker the previous
one last confirmed. It is written only once every update before it is acknowledged (recorded
handled, failed, or ignored): a marker read back never skips an update that was not."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import PollMarker


@dataclass(frozen=True)
class PollMarkers:
    """The stored marker of one bot (`messenger`, `bot_id`)."""

    session_factory: async_sessionmaker[AsyncSession]
    messenger: str
    bot_id: int

    async def load(self) -> int | None:
        async with self.session_factory() as session:
            stored = await session.get(PollMarker, (self.messenger, self.bot_id))
            return stored.marker if stored is not None else None

    async def save(self, marker: int, now: datetime) -> None:
        async with self.session_factory() as session, session.begin():
            stored = await session.get(PollMarker, (self.messenger, self.bot_id))
            if stored is None:
                session.add(
                    PollMarker(
                        messenger=self.messenger, bot_id=self.bot_id, marker=marker, updated_at=now
                    )
                )
            else:
                stored.marker = marker
                stored.updated_at = now
