"""Update middlewares: one DB session (one transaction) per update."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.linking import actor_for
from storage.fsm import joining_update_session
from storage.repositories import Repositories

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class DbSessionMiddleware(BaseMiddleware):
    """Opens a session for the update, hands handlers a `repo`, commits after, rolls back on error.

    A state change and the notifications it causes are therefore committed together; so is an
    FSM state change kept in the SQL database (storage/fsm.py).
    """

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self.session_factory = session_factory

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        async with self.session_factory() as session:
            data["repo"] = Repositories(session)
            try:
                with joining_update_session(session):
                    result = await handler(event, data)
            except BaseException:
                await session.rollback()
                raise
            await session.commit()
            return result


class ActorMiddleware(BaseMiddleware):
    """Loads the sender's Telegram binding: handlers get `link` and `actor` (None if unlinked)."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        user = data.get("event_from_user")
        repo: Repositories = data["repo"]
        link = await repo.links.by_telegram_user(user.id) if user is not None else None
        data["link"] = link
        data["actor"] = actor_for(link) if link is not None else None
        return await handler(event, data)
