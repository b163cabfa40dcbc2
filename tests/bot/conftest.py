"""Fixtures shared by the conversation tests of tests/bot."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.chats import Chat
from tests.director_data import unchanged


@pytest.fixture
async def school_unchanged(
    school: None, session_factory: async_sessionmaker[AsyncSession]
) -> AsyncIterator[None]:
    """The test module's `school`, and once the test is over the check that it changed nothing
    that matters there: no status, history row or push (director_data.unchanged)."""
    async with unchanged(session_factory):
        yield


@pytest.fixture
async def no_errors_in_chat(chat: Chat) -> AsyncIterator[None]:
    """For a module every test of which ends with it (its pytestmark): once the test is over,
    the chat has logged no error and left no press unanswered (Chat.assert_no_errors)."""
    yield
    chat.assert_no_errors()
