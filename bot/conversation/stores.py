"""Where the conversation keeps its state and its users' locks: in Redis when REDIS_URL is set
(shared by the replicas), else in the SQL database and in the process."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.conversation.locks import RedisLocks
from bot.conversation.runner import Runner
from bot.settings import Settings
from services.clock import Clock, SystemClock
from storage.states import RedisStates

REDIS_MAX_CONNECTIONS = 50
REDIS_POOL_TIMEOUT = 20.0  # seconds an update may wait for a Redis connection


def build_runner(
    settings: Settings,
    session_factory: async_sessionmaker[AsyncSession],
    clock: Clock | None = None,
) -> Runner:
    """The conversation's runner: conversation state and the users' locks in Redis when
    REDIS_URL is set (shared by the replicas), else in the SQL database and in the process.

    The Redis client is imported only then: a process without Redis does not carry it (about
    7 MB of memory, bench/memory.py).
    """
    runner = Runner(session_factory, settings, clock or SystemClock())
    if settings.REDIS_URL:
        from redis.asyncio import BlockingConnectionPool, Redis

        # A burst of updates waits for a free connection instead of failing with "Too many
        # connections" (the default pool's behaviour at its limit).
        pool = BlockingConnectionPool.from_url(
            settings.REDIS_URL, max_connections=REDIS_MAX_CONNECTIONS, timeout=REDIS_POOL_TIMEOUT
        )
        redis = Redis(connection_pool=pool)
        runner.states = RedisStates(redis)
        runner.locks = RedisLocks(redis)
        runner.closing.append(redis.aclose)
    return runner
