"""Update middlewares: one DB session (one transaction) per update."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from services.clock import Clock
from services.linking import actor_for
from services.outbox import chat_unblocked
from storage.repositories import Repositories

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class DbSessionMiddleware(BaseMiddleware):
    """Opens a session for the update, hands handlers a `repo`, commits after, rolls back on error.

    A state change and the notifications it causes are therefore committed together.
    """

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self.session_factory = session_factory

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        async with self.session_factory() as session:
            data["repo"] = Repositories(session)
            try:
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


class UnblockMiddleware(BaseMiddleware):
    """A user whose chat was marked blocked and who writes to the bot (or presses a button) is
    reachable again: the flag is cleared and the pushes held for them are sent, in order.

    Runs after ActorMiddleware, in the update's transaction. `my_chat_member` updates are left
    to their handler (handlers/notifications.py), which sets the flag either way.
    """

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        link = data.get("link")
        if (
            link is not None
            and link.blocked
            and not (isinstance(event, Update) and event.my_chat_member is not None)
        ):
            repo: Repositories = data["repo"]
            clock: Clock = data["clock"]
            await chat_unblocked(repo.session, link.chat_id, clock.now())
            set_committed_value(link, "blocked", False)
        return await handler(event, data)
