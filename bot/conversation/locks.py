"""One update of a user at a time: a double tap or two quick presses are handled in order,
each seeing what the one before committed.

The runner holds the user's lock from before the update's transaction opens until its effects
were carried out, so the next update of the user starts after this one is done and shown.
In-process by default; with REDIS_URL the lock lives in Redis and holds across replicas (under
the key aiogram's RedisEventIsolation used, so a replica of the Telegram-only bot and one of
this bot interlock during a rolling upgrade).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Protocol

from storage.states import StateKey

if TYPE_CHECKING:
    from redis.asyncio import Redis

REDIS_LOCK_TIMEOUT = 60.0  # seconds a lock outlives a replica that died holding it


class UserLocks(Protocol):
    def lock(self, key: StateKey) -> AbstractAsyncContextManager[None]: ...


class InProcessLocks:
    """Unlike a plain dict of locks, a user's lock is dropped when nobody holds or waits for
    it, so the registry does not grow without bound."""

    def __init__(self) -> None:
        self._locks: dict[StateKey, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def lock(self, key: StateKey) -> AsyncIterator[None]:
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


class RedisLocks:
    def __init__(self, redis: Redis, timeout: float = REDIS_LOCK_TIMEOUT) -> None:
        self.redis = redis
        self.timeout = timeout

    @asynccontextmanager
    async def lock(self, key: StateKey) -> AsyncIterator[None]:
        name = f"{key.base}:lock"
        async with self.redis.lock(name, timeout=self.timeout):
            yield
