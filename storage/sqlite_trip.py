"""SQLite statements in one trip to aiosqlite's thread instead of four.

aiosqlite runs each sqlite3 call on a thread of its own; SQLAlchemy's aiosqlite adapter makes
four such calls per statement (open a cursor, execute, fetch all, close), each a hand-off to that
thread and back to the event loop. `one_trip(connection)`, applied to every new connection
(storage/db.py), makes the adapter's cursor do the four in one function on that thread: the same
sqlite3 calls in the same order, with the same results and errors, a quarter of the hand-offs.

Server-side cursors, `executemany` and everything else keep SQLAlchemy's own code. If the adapter
is not the one this was written against (another SQLAlchemy or aiosqlite), nothing is changed.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from typing import Any

from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
)

Outcome = tuple[Any, list[Any], Any, int]  # description, rows, lastrowid, rowcount


def _run(connection: sqlite3.Connection, operation: str, parameters: Any) -> Outcome:
    """On aiosqlite's thread: what the adapter's execute() does in four hand-offs."""
    cursor = connection.cursor()
    try:
        if parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        if cursor.description:
            return cursor.description, cursor.fetchall(), -1, -1
        return None, [], cursor.lastrowid, cursor.rowcount
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    __slots__ = ()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        try:
            outcome: Outcome = self.await_(
                self._connection._execute(_run, self._connection._conn, operation, parameters)
            )
        except Exception as error:
            self._adapt_connection._handle_exception(error)
            raise  # _handle_exception raises; this keeps type checkers sure of it
        self.description, rows, self.lastrowid, self.rowcount = outcome
        self._rows = deque(rows)


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()

    def cursor(self, server_side: bool = False) -> AsyncAdapt_aiosqlite_cursor:
        if server_side:
            return super().cursor(server_side=True)
        return OneTripCursor(self)


def one_trip(dbapi_connection: Any) -> bool:
    """Make a new connection's statements take one trip; False if it is not SQLAlchemy's
    aiosqlite adapter as expected (then it is left as it is)."""
    if type(dbapi_connection) is not AsyncAdapt_aiosqlite_connection:
        return False
    inner = getattr(dbapi_connection, "_connection", None)
    if not (callable(getattr(inner, "_execute", None)) and hasattr(type(inner), "_conn")):
        return False
    dbapi_connection.__class__ = OneTripConnection
    return True
