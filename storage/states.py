"""Where a conversation's pending input and list choices are kept between updates: the SQL
database (the embedded default) or Redis (REDIS_URL), surviving restarts either way.

A state is a name and a JSON object (`RawState`), keyed by the messenger, the bot, the chat
and the user (`StateKey`). Telegram's rows and keys are the ones the Telegram-only bot kept
with aiogram's FSM storage (table `fsm_states`, its rows now marked 'telegram'; Redis keys
`fsm:<bot>:<chat>:<user>:state|data`), so a conversation in progress at an upgrade goes on;
another messenger's Redis keys name it (`fsm:<messenger>:<bot>:<chat>:<user>:…`).

In SQL the state is read and written in the update's own session: it commits or rolls back
with the update. Redis is written after the update's commit (`save` returns the write to make
then), so a state is never ahead of the database.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import and_, bindparam, delete, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import senders
from storage.db import compiled_once, connection_of
from storage.models import Account, AccountRole, Binding, FsmState
from storage.senders import BindingRow

if TYPE_CHECKING:
    from redis.asyncio import Redis

STATE_TTL_SECONDS = 30 * 24 * 3600  # Redis: a conversation untouched for a month is forgotten


TELEGRAM = "telegram"


@dataclass(frozen=True)
class StateKey:
    bot_id: int
    chat_id: int
    user_id: int
    messenger: str = TELEGRAM

    @property
    def base(self) -> str:
        """The Redis key of the conversation, without its suffix (as aiogram's for Telegram)."""
        where = "" if self.messenger == TELEGRAM else f"{self.messenger}:"
        return f"fsm:{where}{self.bot_id}:{self.chat_id}:{self.user_id}"


@dataclass(frozen=True)
class RawState:
    name: str | None = None
    data: dict[str, Any] | None = None

    @property
    def empty(self) -> bool:
        return self.name is None and not self.data


AfterCommit = Callable[[], Awaitable[None]]


class StateStore(Protocol):
    async def load(
        self, session: AsyncSession, key: StateKey
    ) -> tuple[BindingRow | None, RawState]:
        """The sender's binding (in the key's messenger, of the key's user) as plain rows, and
        the conversation's state."""

    async def save(
        self, session: AsyncSession, key: StateKey, state: RawState
    ) -> AfterCommit | None:
        """Write the state (in `session`), or return the write to make after the commit."""

    async def clear(self, key: StateKey) -> None:
        """Forget the conversation outside any update (a revocation from the web module)."""


_KEY = and_(
    FsmState.messenger == bindparam("messenger"),
    FsmState.bot_id == bindparam("bot_id"),
    FsmState.chat_id == bindparam("chat_id"),
    FsmState.user_id == bindparam("user_id"),
    FsmState.thread_id == 0,
    FsmState.business_connection_id == "",
    FsmState.destiny == "default",
)


def _link_and_state() -> Any:
    """The binding of the sender, its account, the account's roles (a row each) and the
    conversation's row in one Core statement, built once."""
    anchor = select(literal(1).label("anchor")).subquery("anchor")
    return (
        select(*senders.COLUMNS, FsmState.state, FsmState.data)
        .select_from(anchor)
        # outer joins: an inner one would drop the row of an unlinked user
        .outerjoin(
            Binding,
            and_(
                Binding.messenger == bindparam("messenger"),
                Binding.user_id == bindparam("user_id"),
            ),
        )
        .outerjoin(Account, Account.id == Binding.account_id)
        .outerjoin(AccountRole, AccountRole.account_id == Account.id)
        .outerjoin(FsmState, _KEY)
    )


_LINK_AND_STATE = _link_and_state()
_DELETE_STATE = delete(FsmState).where(_KEY)


def _key_params(key: StateKey) -> dict[str, int | str]:
    return {
        "messenger": key.messenger,
        "bot_id": key.bot_id,
        "chat_id": key.chat_id,
        "user_id": key.user_id,
    }


# Written on most updates. A missing thread or business connection is 0 or '' (FsmState).
_SAVE_STATE = compiled_once(
    FsmState,
    "INSERT INTO fsm_states (messenger, bot_id, chat_id, user_id, thread_id, "
    "business_connection_id, destiny, state, data) "
    "VALUES (:messenger, :bot_id, :chat_id, :user_id, 0, '', 'default', :state, :data) "
    "ON CONFLICT (messenger, bot_id, chat_id, user_id, thread_id, business_connection_id, "
    "destiny) DO UPDATE SET state = excluded.state, data = excluded.data",
)


class SqlStates:
    """States in the `fsm_states` table, in the update's transaction; a state with no name and
    no data leaves no row."""

    def __init__(self, session_factory: Callable[[], AsyncSession]) -> None:
        self.session_factory = session_factory

    async def load(
        self, session: AsyncSession, key: StateKey
    ) -> tuple[BindingRow | None, RawState]:
        connection = await connection_of(session)
        rows = (await connection.execute(_LINK_AND_STATE, _key_params(key))).all()
        # One row per role of the account; the state's columns repeat on each.
        name, data = rows[0].state, rows[0].data
        return senders.sender_of(rows), RawState(name, dict(data) if data else None)

    async def save(
        self, session: AsyncSession, key: StateKey, state: RawState
    ) -> AfterCommit | None:
        connection = await connection_of(session)
        if state.empty:
            await connection.execute(_DELETE_STATE, _key_params(key))
            return None
        values = {**_key_params(key), "state": state.name, "data": state.data or {}}
        await connection.execute(_SAVE_STATE, values)
        return None

    async def clear(self, key: StateKey) -> None:
        async with self.session_factory() as session, session.begin():
            await session.execute(_DELETE_STATE, _key_params(key))


class RedisStates:
    """States in Redis, under the keys aiogram's RedisStorage used; written after the commit."""

    def __init__(self, redis: Redis, ttl: int = STATE_TTL_SECONDS) -> None:
        self.redis = redis
        self.ttl = ttl

    @staticmethod
    def _keys(key: StateKey) -> tuple[str, str]:
        return f"{key.base}:state", f"{key.base}:data"

    async def load(
        self, session: AsyncSession, key: StateKey
    ) -> tuple[BindingRow | None, RawState]:
        connection = await connection_of(session)
        params = {"messenger": key.messenger, "user_id": key.user_id}
        link = senders.sender_of((await connection.execute(senders.BY_USER, params)).all())
        name, data = await self.redis.mget(self._keys(key))
        if isinstance(name, bytes):
            name = name.decode()
        decoded = json.loads(data) if data else None
        return link, RawState(name, decoded if isinstance(decoded, dict) else None)

    async def save(
        self, session: AsyncSession, key: StateKey, state: RawState
    ) -> AfterCommit | None:
        state_key, data_key = self._keys(key)

        async def write() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                if state.name is None:
                    pipe.delete(state_key)
                else:
                    pipe.set(state_key, state.name, ex=self.ttl)
                if state.data:
                    pipe.set(data_key, json.dumps(state.data), ex=self.ttl)
                else:
                    pipe.delete(data_key)
                await pipe.execute()

        return write

    async def clear(self, key: StateKey) -> None:
        await self.redis.delete(*self._keys(key))
