"""A job run every few seconds in a background task until told to stop.

The job returns how many outbox rows it wrote; then `on_written` wakes the dispatcher. A failed
run (the database briefly unavailable) is logged and tried again at the next turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def run_periodically(
    job: Callable[[], Awaitable[int | None]],
    stop: asyncio.Event,
    *,
    interval: float,
    what: str,
    on_written: Callable[[], None] | None = None,
) -> None:
    """Run `job` every `interval` seconds until `stop` is set; `what` names it in the log."""
    while not stop.is_set():
        try:
            written = await job()
        except Exception:  # the database may be briefly unavailable: try at the next turn
            log.exception("%s failed", what)
            written = None
        if written and on_written is not None:
            on_written()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
