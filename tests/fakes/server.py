"""What the test doubles of outside services share: an aiohttp server on 127.0.0.1.

``LoopbackServer`` serves an application on a free port while started (``await start()`` or
``async with``); ``RecordingServer`` adds what both Bot API doubles do with it: every request
arrives at one handler and is recorded as a call that observers see at once, and stopping wakes
pending long polls and delayed answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from types import TracebackType
from typing import Generic, Self, TypeVar

from aiohttp import web

__all__ = ["LoopbackServer", "RecordingServer"]

CallT = TypeVar("CallT")


class LoopbackServer:
    """An aiohttp application on 127.0.0.1, on a free port, while started."""

    _runner: web.AppRunner | None = None
    _url: str | None = None

    def _application(self) -> web.Application:
        """The application to serve, made at each start."""
        raise NotImplementedError

    def _stopping_now(self) -> None:
        """Called when a stop begins, before the server closes its connections."""

    @property
    def url(self) -> str:
        """Base URL, ``http://127.0.0.1:PORT`` (only while started)."""
        if self._url is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._url

    async def start(self) -> None:
        """Serve on 127.0.0.1, on a free port."""
        if self._runner is not None:
            raise RuntimeError(f"{type(self).__name__} is already started")
        runner = web.AppRunner(self._application(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._runner = runner
        self._url = f"http://127.0.0.1:{runner.addresses[0][1]}"

    async def stop(self) -> None:
        """Stop serving (nothing happens if not started)."""
        if self._runner is None:
            return
        self._stopping_now()
        runner, self._runner, self._url = self._runner, None, None
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


class RecordingServer(LoopbackServer, Generic[CallT]):
    """A server whose every request goes to ``_handle_request`` and is recorded as a call.

    Several processes sharing one server can be told apart: point each at ``url_for(name)``
    (``{url}/{name}``) and the subclass records its requests with that name.
    """

    _reserved_names: frozenset[str] = frozenset()
    """First path segments of the API itself, which ``url_for`` cannot take as names."""
    _client_max_size = 1024**2
    """The largest request body accepted (aiohttp's default)."""

    def __init__(self) -> None:
        self.calls: list[CallT] = []
        """Every request received, in the order the answers were produced."""
        self._observers: list[Callable[[CallT], None]] = []
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()

    async def _handle_request(self, request: web.Request) -> web.Response:
        raise NotImplementedError

    def _application(self) -> web.Application:
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=self._client_max_size)
        app.router.add_route("*", "/{path:.*}", self._handle_request)
        return app

    def _stopping_now(self) -> None:
        """Pending long polls return empty and delayed responses go out now."""
        self._stopping.set()
        self._wakeup.set()

    def url_for(self, via: str) -> str:
        """A base URL whose requests are recorded with ``Call.via == via`` (letters, digits,
        ``_.-``): one per process, when several share the server."""
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", via) or via in self._reserved_names:
            raise ValueError(f"not a usable name for url_for: {via!r}")
        return f"{self.url}/{via}"

    def observe(self, callback: Callable[[CallT], None]) -> None:
        """Call ``callback`` with every call as it is recorded (before its answer goes out)."""
        self._observers.append(callback)

    def _record(self, call: CallT) -> None:
        self.calls.append(call)
        for observer in self._observers:
            observer(call)

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake up early when the server stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _wait_for_wakeup(self, seconds: float) -> None:
        """Wait until something wakes long polls (a queued update, a stop) or ``seconds`` pass."""
        self._wakeup.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), seconds)

    @staticmethod
    def _positive(times: int) -> int:
        if times < 1:
            raise ValueError("times must be at least 1")
        return times
