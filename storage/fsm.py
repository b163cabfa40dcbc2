"""aiogram FSM storage in the SQL database: state survives restarts on the embedded default.

With REDIS_URL set, aiogram's RedisStorage is used instead (bot/app.py build_fsm_storage).

The storage opens its own short sessions from the session factory: it is infrastructure, not the
domain data of an update. One exception: while an update is being handled, DbSessionMiddleware
binds the update's session (`joining_update_session`) and the storage reads and writes through
it. On SQLite a second writing connection would wait for the update's uncommitted writes (and time
out), and on every backend the state change then commits or rolls back together with the update's
changes; reading the state there saves the update a second connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, StateType, StorageKey
from sqlalchemy import ColumnElement, Text, and_, cast, delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.util import identity_key

from storage.db import upsert
from storage.models import FsmState

_update_session: ContextVar[AsyncSession | None] = ContextVar("fsm_update_session", default=None)

ABSENT = "fsm_absent"  # session.info: primary keys of rows found missing in this session
KEY_COLUMNS = ("bot_id", "chat_id", "user_id", "thread_id", "business_connection_id", "destiny")


@contextmanager
def joining_update_session(session: AsyncSession) -> Iterator[None]:
    """While inside, SqlStorage over the same database writes in `session`'s transaction."""
    token = _update_session.set(session)
    try:
        yield
    finally:
        _update_session.reset(token)


def _key_values(key: StorageKey) -> dict[str, Any]:
    return {
        "bot_id": key.bot_id,
        "chat_id": key.chat_id,
        "user_id": key.user_id,
        "thread_id": key.thread_id or 0,
        "business_connection_id": key.business_connection_id or "",
        "destiny": key.destiny,
    }


def _where(key: StorageKey) -> ColumnElement[bool]:
    return and_(*(getattr(FsmState, name) == value for name, value in _key_values(key).items()))


def _identity(key: StorageKey) -> tuple[Any, ...]:
    """The row's primary key, for Session.get (KEY_COLUMNS is the primary key's order)."""
    values = _key_values(key)
    return tuple(values[name] for name in KEY_COLUMNS)


def _state_name(state: StateType) -> str | None:
    return state.state if isinstance(state, State) else state


class SqlStorage(BaseStorage):
    """FSM state and data in the `fsm_states` table; correct on SQLite and PostgreSQL.

    Writes are upserts, so two first writes for one key do not collide; a key whose state is
    cleared and whose data is empty leaves no row behind. Data must be JSON-serialisable (as
    with RedisStorage).
    """

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self.session_factory = session_factory

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[AsyncSession]:
        joined = _update_session.get()
        if joined is not None and joined.bind is self.session_factory.kw.get("bind"):
            yield joined
            return
        async with self.session_factory() as session, session.begin():
            yield session

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        name = _state_name(state)
        async with self._session() as session:
            await self._write(session, key, "state", name)
            if name is None:
                await self._delete_if_empty(session, key)

    async def get_state(self, key: StorageKey) -> str | None:
        async with self._session() as session:
            row = await self._row(session, key)
            return row.state if row is not None else None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        async with self._session() as session:
            await self._write(session, key, "data", dict(data))
            if not data:
                await self._delete_if_empty(session, key)

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        async with self._session() as session:
            row = await self._row(session, key)
            return dict(row.data) if row is not None and row.data else {}

    @staticmethod
    async def _row(session: AsyncSession, key: StorageKey) -> FsmState | None:
        """The row by its primary key. Within an update's session the row (or its absence)
        read for the FSM middleware serves the handler's reads too; writes drop what was read."""
        identity = _identity(key)
        absent: set[tuple[Any, ...]] = session.info.setdefault(ABSENT, set())
        if identity in absent:
            return None
        row = await session.get(FsmState, identity)
        if row is None:
            absent.add(identity)
        return row

    @staticmethod
    def _forget(session: AsyncSession, key: StorageKey) -> None:
        """Drop what the session read of the row, so the next read sees the write."""
        identity = _identity(key)
        session.info.get(ABSENT, set()).discard(identity)
        row = session.identity_map.get(identity_key(FsmState, identity))
        if row is not None:
            session.expunge(row)

    async def close(self) -> None:
        """Nothing to close: the engine belongs to the application."""

    @staticmethod
    async def _write(session: AsyncSession, key: StorageKey, column: str, value: Any) -> None:
        SqlStorage._forget(session, key)
        values: dict[str, Any] = {**_key_values(key), "state": None, "data": {}, column: value}
        statement = upsert(session, FsmState).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=list(KEY_COLUMNS), set_={column: getattr(statement.excluded, column)}
        )
        await session.execute(statement)

    @staticmethod
    async def _delete_if_empty(session: AsyncSession, key: StorageKey) -> None:
        # Data is written by this class only, always through json.dumps: empty data is '{}'.
        await session.execute(
            delete(FsmState).where(
                _where(key), FsmState.state.is_(None), cast(FsmState.data, Text) == "{}"
            )
        )
