"""Engine and session factory for SQLite (embedded default) and PostgreSQL (at scale)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import TextClause, bindparam, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import PoolResetState

from storage.sqlite_trip import one_trip

SQLITE_BUSY_TIMEOUT_MS = 15_000


def _prepare_sqlite(dbapi_connection: Any, _record: Any) -> None:
    """Every new SQLite connection: one trip per statement, the pragmas."""
    one_trip(dbapi_connection)  # each statement one hand-off to aiosqlite's thread, not four
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA cache_size=-512")
    cursor.close()


def _reset_sqlite(dbapi_connection: Any, _record: Any, state: PoolResetState) -> None:
    """The pool's reset of a SQLite connection: a rollback if a transaction is still open (a
    commit that failed leaves one, and so may a connection given back by hand), none after a
    commit or a rollback."""
    if not state.asyncio_safe or state.transaction_was_reset:
        return
    if dbapi_connection.driver_connection.in_transaction:
        dbapi_connection.rollback()


def create_engine(database_url: str, **kwargs: Any) -> AsyncEngine:
    """Create the async engine; for SQLite make the file's folder and set WAL, FKs, busy timeout."""
    url = make_url(database_url)
    # Statement parameters carry personal data (names, SNILS hashes): keep them out of error
    # messages and logs.
    kwargs.setdefault("hide_parameters", True)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # A connection going back to the pool is rolled back only if SQLite says a transaction
        # is open (`_reset_sqlite`): after a session's commit the pool's unconditional rollback
        # was one more hand-off to aiosqlite's thread per session, every update's and every
        # outbox operation's (docs/BENCHMARKS.md).
        kwargs.setdefault("pool_reset_on_return", None)
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _prepare_sqlite)
        event.listen(engine.sync_engine.pool, "reset", _reset_sqlite)
        return engine
    # No ping before each checkout (a round trip on every update): a connection the server
    # dropped fails its statement, SQLAlchemy then discards the whole pool, and that one
    # update's transaction rolls back (the user is asked to try again). Idle connections are
    # renewed before a server's or a proxy's idle timeout would cut them.
    kwargs.setdefault("pool_recycle", 1800)
    return create_async_engine(url, **kwargs)


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


_CONNECTION = "connection"  # session.info: (the transaction, its connection)


async def connection_of(session: AsyncSession) -> AsyncConnection:
    """The connection of the session's transaction (begun if none is), for Core statements:
    asked of the session once per transaction, since each ask is a trip through SQLAlchemy's
    greenlet and the session's bookkeeping (a tenth of a list update's SQLAlchemy time)."""
    sync = session.sync_session
    known = sync.info.get(_CONNECTION)
    if known is not None and known[0] is sync.get_transaction():
        connection: AsyncConnection = known[1]
        return connection
    connection = await session.connection()
    sync.info[_CONNECTION] = (sync.get_transaction(), connection)
    return connection


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def upsert(
    session: AsyncSession, model: type[DeclarativeBase]
) -> postgresql.Insert | sqlite.Insert:
    """INSERT with ON CONFLICT clauses (on_conflict_do_nothing / _do_update) for the session's
    backend: both SQLite and PostgreSQL spell them the same way."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)


def compiled_once(model: type[DeclarativeBase], sql: str) -> TextClause:
    """A statement written on every update as text, compiled once: SQLAlchemy never caches a
    dialect's INSERT … ON CONFLICT construct, so that would be compiled anew each time. Each
    `:name` parameter takes the type of the `model`'s column of that name. Both SQLite and
    PostgreSQL spell ON CONFLICT the same way."""
    statement = text(sql)
    names = statement.compile().params
    columns = model.__table__.c
    return statement.bindparams(*(bindparam(name, type_=columns[name].type) for name in names))
