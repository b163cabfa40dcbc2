"""A process's stop, one part after another, none of them able to hold it up.

Each part (the dispatchers, the web server, the sessions, the database) gets a bounded time; a
part still running then is cancelled and left behind, with a warning, and the stop goes on: what
it had in hand comes back on its own (an outbox row when its lease runs out, an update when the
messenger delivers it again). The whole stop stays within the grace systemd and Docker give
before SIGKILL (docs/DEPLOYMENT.md), and no part waits for another that hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Iterator
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)

PART_SECONDS = 10.0  # how long one part of the stop may take
CANCEL_SECONDS = 1.0  # how long a part cut short may take to end


async def within(what: str, part: Awaitable[None], seconds: float = PART_SECONDS) -> None:
    """Wait up to `seconds` for `part` (its error comes out); cut it short after that."""
    task = asyncio.ensure_future(part)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if done:
        task.result()
        return
    log.warning("stopping: %s did not end within %.0f s; cut short", what, seconds)
    task.cancel()
    await asyncio.wait({task}, timeout=CANCEL_SECONDS)


class Closable(Protocol):
    async def close(self) -> None: ...


async def close_connections(
    telegram: Closable | None, max_client: Closable | None, engine: AsyncEngine
) -> None:
    """The last parts of every process's stop: the messengers' HTTP sessions, the database."""
    if telegram is not None:
        await within("the Telegram session", telegram.close())
    if max_client is not None:
        await within("the MAX session", max_client.close())
    await within("the database", engine.dispose())


@contextlib.contextmanager
def stop_signals() -> Iterator[asyncio.Event]:
    """SIGTERM and SIGINT set the event yielded, from the process's start until its stop has
    ended: one during the start-up stops the process once it is up, one more during the stop
    changes nothing (the stop is bounded anyway), and neither ends the process half-way."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for number in SIGNALS:
        loop.add_signal_handler(number, stop.set)
    try:
        yield stop
    finally:
        for number in SIGNALS:
            loop.remove_signal_handler(number)
