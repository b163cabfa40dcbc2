"""Fixtures shared by the unit tests of the doubles (test_fake_bot_api.py, test_fake_max_api.py):
each module makes its bots with its own `make_bot`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest


@pytest.fixture
def bot(make_bot: Callable[[], object]) -> object:
    """A bot of the module's `make_bot`, with its defaults."""
    return make_bot()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain HTTP client, for what the bot libraries do not send."""
    async with aiohttp.ClientSession() as session:
        yield session
