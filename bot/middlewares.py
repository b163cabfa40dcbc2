"""Update middlewares: one update at a time per user; one DB session (one transaction) per
update, which also loads the user's FSM state; pending text inputs abandoned by navigation.

In order (bot.app.build_dispatcher), after bot.metrics.UpdateMetricsMiddleware: UserLockMiddleware,
DbSessionMiddleware, StateAndActorMiddleware, UnblockMiddleware, AbandonInputMiddleware."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiogram import BaseMiddleware
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.fsm.context import FSMContext
from aiogram.fsm.middleware import FSMContextMiddleware
from aiogram.fsm.state import StatesGroup
from aiogram.fsm.storage.base import BaseEventIsolation, StorageKey
from aiogram.types import TelegramObject, Update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from bot.receipts import Handling, Receipt, Redeliver
from services.clock import Clock
from services.linking import actor_for
from services.outbox import chat_unblocked
from storage.fsm import SqlStorage, joining_update_session
from storage.models import TelegramLink
from storage.repositories import Repositories
from storage.updates import mark_handled, record_update, was_handled

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class UserLockMiddleware(BaseMiddleware):
    """Takes the user's events-isolation lock (aiogram's FSM key of the update) for the whole
    update: the next update of the user starts after this one has committed.

    Stands in for the locking of aiogram's FSM middleware, which would take the lock inside the
    update's DB session; `fsm` is the Dispatcher's (unregistered) FSM middleware, whose key
    strategy and events isolation are used.
    """

    def __init__(self, fsm: FSMContextMiddleware) -> None:
        self.fsm = fsm

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        context = self.fsm.resolve_event_context(data["bot"], data)
        if context is None:
            return await handler(event, data)
        async with self.fsm.events_isolation.lock(key=context.key):
            data["state"] = context
            return await handler(event, data)


class StateAndActorMiddleware(BaseMiddleware):
    """Gives handlers `state`, `raw_state` and `fsm_storage` as aiogram's FSM middleware does,
    the state read under the user's lock, and the sender's Telegram binding: `link` and `actor`
    (None if unlinked).

    With the SQL storage both come from one statement of the update's session
    (SqlStorage.load_with_link), which also keeps the FSM row for the handler's reads.
    """

    def __init__(self, fsm: FSMContextMiddleware) -> None:
        self.storage = fsm.storage

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        data["fsm_storage"] = self.storage
        context = data.get("state")
        user = data.get("event_from_user")
        repo: Repositories = data["repo"]
        link: TelegramLink | None = None
        storage = self.storage
        if (
            isinstance(context, FSMContext)
            and user is not None
            and isinstance(storage, SqlStorage)
            and storage.joins(repo.session)
        ):
            link, data["raw_state"] = await storage.load_with_link(
                repo.session, context.key, user.id
            )
        else:
            if isinstance(context, FSMContext):
                data["raw_state"] = await context.get_state()
            if user is not None:
                link = await repo.links.by_telegram_user(user.id)
        data["link"] = link
        data["actor"] = actor_for(link) if link is not None else None
        return await handler(event, data)


class DbSessionMiddleware(BaseMiddleware):
    """One transaction per update: opens a session, hands handlers a `repo`, records the update
    as handled and commits after the handler, rolls back if it raises.

    A state change and the notifications it causes are therefore committed together; so is an
    FSM state change kept in the SQL database (storage/fsm.py), and so is the record that the
    update was handled (storage/updates.py): a redelivered update is skipped, one whose
    handling never committed is handled again. The `receipt` (bot/receipts.py) says which.
    """

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self.session_factory = session_factory

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        receipt: Receipt = data.setdefault("receipt", Receipt())
        update_id = event.update_id if isinstance(event, Update) else None
        clock: Clock = data["clock"]
        async with self.session_factory() as session:
            if update_id is not None and await was_handled(session, update_id):
                log.info("update %s was handled before; skipped", update_id)
                receipt.outcome = Handling.DUPLICATE
                return UNHANDLED
            data["repo"] = Repositories(session)
            try:
                with joining_update_session(session):
                    result = await handler(event, data)
                if update_id is not None and not await mark_handled(
                    session, update_id, clock.now()
                ):
                    await session.rollback()
                    log.info("update %s was handled meanwhile; this handling undone", update_id)
                    receipt.outcome = Handling.DUPLICATE
                    return UNHANDLED
                await session.commit()
            except Exception as error:
                await session.rollback()
                receipt.outcome = await self._record_failure(update_id, clock)
                if receipt.outcome is None:
                    raise Redeliver(f"update {update_id} not recorded") from error
                raise
            except BaseException:  # cancelled (a stop): not acknowledged, delivered again
                await session.rollback()
                raise
        receipt.outcome = Handling.HANDLED
        return result

    async def _record_failure(self, update_id: int | None, clock: Clock) -> Handling | None:
        """A failed update is handled once too: recorded in a transaction of its own. None if
        even that fails (the database is unavailable): the update must come again."""
        if update_id is None:
            return Handling.FAILED
        try:
            await record_update(self.session_factory, update_id, clock.now())
        except SQLAlchemyError as error:
            log.warning("update %s could not be recorded: %s", update_id, type(error).__name__)
            return None
        return Handling.FAILED


class UnblockMiddleware(BaseMiddleware):
    """A user whose chat was marked blocked and who writes to the bot (or presses a button) is
    reachable again: the flag is cleared and the pushes held for them are sent, in order.

    Runs after StateAndActorMiddleware, in the update's transaction. `my_chat_member` updates are
    left to their handler (handlers/notifications.py), which sets the flag either way.
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


class UserEventIsolation(BaseEventIsolation):
    """One update at a time per user in a chat: a double tap or two quick presses are handled
    in order, each seeing what the one before committed.

    UserLockMiddleware takes this lock before the update's session opens and holds it through
    the middlewares and the handler. In-process only: replicas sharing Redis use
    aiogram's RedisEventIsolation instead. Unlike aiogram's SimpleEventIsolation, a user's lock
    is dropped when nobody holds or waits for it, so the registry does not grow without bound.
    """

    def __init__(self) -> None:
        self._locks: dict[StorageKey, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def lock(self, key: StorageKey) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def users(self) -> int:
        """How many users' locks are held or awaited now."""
        return len(self._locks)

    async def close(self) -> None:
        self._locks.clear()


class AbandonInputMiddleware(BaseMiddleware):
    """A pending text input (a comment, a search) ends when the user presses any button or
    sends any command but /cancel: the text that follows is then never taken for the input.

    Only the states of `group` are touched; other features keep their own states. Runs after
    StateAndActorMiddleware, so `state` and `raw_state` are the user's, loaded under the lock.
    """

    def __init__(self, group: type[StatesGroup], keep_command: str = "cancel") -> None:
        self.group = group
        self.keep_command = keep_command

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        state: FSMContext | None = data.get("state")
        raw_state = data.get("raw_state")
        if (
            state is not None
            and isinstance(raw_state, str)
            and raw_state in self.group
            and isinstance(event, Update)
            and self._leaves_input(event)
        ):
            await state.set_state(None)
            data["raw_state"] = None
        return await handler(event, data)

    def _leaves_input(self, update: Update) -> bool:
        if update.callback_query is not None:
            return True
        text = update.message.text if update.message is not None else None
        if not text or not text.startswith("/"):
            return False
        command = text.split(maxsplit=1)[0][1:].split("@", 1)[0]
        return command.lower() != self.keep_command
