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

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, StateType, StorageKey
from sqlalchemy import ColumnElement, Select, Text, and_, bindparam, cast, delete, literal, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import joinedload

from storage.db import FSM_KNOWN, upsert
from storage.models import Account, FsmState, TelegramLink

_update_session: ContextVar[AsyncSession | None] = ContextVar("fsm_update_session", default=None)

KNOWN = FSM_KNOWN  # session.info: what this session has read or written of each key's row
Known = tuple[str | None, dict[str, Any]]  # (state, data); a missing row is (None, {})
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
    """The row's primary key (KEY_COLUMNS is its order): what the session remembers it by."""
    values = _key_values(key)
    return tuple(values[name] for name in KEY_COLUMNS)


def _link_and_state() -> Select[tuple[TelegramLink, str | None, dict[str, Any]]]:
    """SqlStorage.load_with_link's statement, built once: its parameters are bound per call,
    and SQLAlchemy's cache key of a statement object is computed once."""
    anchor = select(literal(1).label("anchor")).subquery("anchor")
    key = and_(*(getattr(FsmState, name) == bindparam(name) for name in KEY_COLUMNS))
    return (
        select(TelegramLink, FsmState.state, FsmState.data)
        .select_from(anchor)
        .outerjoin(TelegramLink, TelegramLink.telegram_user_id == bindparam("telegram_user_id"))
        .outerjoin(FsmState, key)
        # as WITH_ACCOUNT, but outer: an inner join would drop the row of an unlinked user
        .options(joinedload(TelegramLink.account, innerjoin=False).joinedload(Account.roles))
    )


_LINK_AND_STATE = _link_and_state()


def _known(session: AsyncSession, key: StorageKey) -> Known | None:
    known: dict[tuple[Any, ...], Known] = session.info.get(KNOWN, {})
    return known.get(_identity(key))


def _remember(session: AsyncSession, key: StorageKey, value: Known) -> None:
    session.info.setdefault(KNOWN, {})[_identity(key)] = value


def _forget(session: AsyncSession, key: StorageKey) -> None:
    session.info.get(KNOWN, {}).pop(_identity(key), None)


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

    def _joined(self) -> AsyncSession | None:
        """The update's session (joining_update_session) if it is over this storage's database."""
        joined = _update_session.get()
        if joined is not None and joined.bind is self.session_factory.kw.get("bind"):
            return joined
        return None

    def joins(self, session: AsyncSession) -> bool:
        """Whether this storage reads and writes through `session`."""
        return session is self._joined()

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[AsyncSession]:
        joined = self._joined()
        if joined is not None:
            yield joined
            return
        async with self.session_factory() as session, session.begin():
            yield session

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        name = _state_name(state)
        await self._set(key, "state", name, emptied=name is None)

    async def get_state(self, key: StorageKey) -> str | None:
        async with self._session() as session:
            state, _ = await self._read(session, key)
            return state

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        await self._set(key, "data", dict(data), emptied=not data)

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        async with self._session() as session:
            _, data = await self._read(session, key)
            return dict(data)

    async def load_with_link(
        self, session: AsyncSession, key: StorageKey, telegram_user_id: int
    ) -> tuple[TelegramLink | None, str | None]:
        """The user's Telegram binding (as LinkRepo.by_telegram_user loads it) and the FSM state
        of `key`, in one statement of the update's session; the state and data are then served
        from memory for the rest of the update."""
        result = await session.execute(
            _LINK_AND_STATE, {"telegram_user_id": telegram_user_id, **_key_values(key)}
        )
        # One row per role of the account (joined eagerly); the FSM columns repeat on each.
        link, state, data = result.unique(lambda _: True).one()
        _remember(session, key, (state, dict(data) if data else {}))
        return link, state

    @staticmethod
    async def _read(session: AsyncSession, key: StorageKey) -> Known:
        """State and data of the key: from what this session already knows of the row, else
        read (a missing row is no state and no data)."""
        known = _known(session, key)
        if known is None:
            row = (
                await session.execute(select(FsmState.state, FsmState.data).where(_where(key)))
            ).one_or_none()
            known = (row[0], dict(row[1]) if row[1] else {}) if row is not None else (None, {})
            _remember(session, key, known)
        return known

    async def close(self) -> None:
        """Nothing to close: the engine belongs to the application."""

    async def _set(self, key: StorageKey, column: str, value: Any, *, emptied: bool) -> None:
        """Write the state or the data of the key's row. A row left with neither is deleted:
        at once when this session knows the other column is empty too, else after the write,
        if the other column turns out empty."""
        async with self._session() as session:
            known = _known(session, key)
            if emptied and known is not None:
                other_empty = not known[1] if column == "state" else known[0] is None
                if other_empty:
                    await self._delete(session, key)
                    return
            await self._write(session, key, column, value)
            if emptied and known is None:
                await self._delete_if_empty(session, key)

    @staticmethod
    async def _write(session: AsyncSession, key: StorageKey, column: str, value: Any) -> None:
        known = _known(session, key)
        values: dict[str, Any] = {**_key_values(key), "state": None, "data": {}, column: value}
        statement = upsert(session, FsmState).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=list(KEY_COLUMNS), set_={column: getattr(statement.excluded, column)}
        )
        await session.execute(statement)
        if known is None:
            _forget(session, key)  # the other column is as it was, which this session never saw
        elif column == "state":
            _remember(session, key, (value, known[1]))
        else:
            _remember(session, key, (known[0], dict(value)))

    @staticmethod
    async def _delete(session: AsyncSession, key: StorageKey) -> None:
        await session.execute(delete(FsmState).where(_where(key)))
        _remember(session, key, (None, {}))

    @staticmethod
    async def _delete_if_empty(session: AsyncSession, key: StorageKey) -> None:
        # Data is written by this class only, always through json.dumps: empty data is '{}'.
        await session.execute(
            delete(FsmState).where(
                _where(key), FsmState.state.is_(None), cast(FsmState.data, Text) == "{}"
            )
        )
        _forget(session, key)


def conversation_eraser(
    storage: BaseStorage, bot_id: int
) -> Callable[[int, int], Awaitable[None]] | None:
    """What clears the FSM state and data of a Telegram user's private chat, `(user_id,
    chat_id)`, when their binding is removed outside an update (the web module's revocation),
    as /logout clears its own. None for SqlStorage: its rows go in the transaction that removes
    the binding (LinkRepo.remove)."""
    if isinstance(storage, SqlStorage):
        return None

    async def forget(user_id: int, chat_id: int) -> None:
        key = StorageKey(bot_id=bot_id, chat_id=chat_id, user_id=user_id)
        await storage.set_state(key, None)
        await storage.set_data(key, {})

    return forget
