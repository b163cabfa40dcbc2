"""Nothing is said before it is true: a reply that reports a change is sent after the commit,
and a commit that fails is reported as not done, with the card as it is."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tests.director_data import (
    DIRECTOR,
    NEWEST_NEW,
    events_of,
    outbox_of,
    seed_applications,
    status_of,
)
from tests.fakes.bot_api import FakeBotAPI
from tests.harness import BotHarness

pytestmark = pytest.mark.every_backend  # commits that fail: the database's transactions decide


@pytest.fixture
async def school(seeded: None, session_factory: async_sessionmaker[AsyncSession]) -> None:
    await seed_applications(session_factory)


def fail_next_commit(engine: AsyncEngine) -> None:
    """The next COMMIT on the engine fails, as a database gone away or a full disk would."""

    def refuse(connection: Any) -> None:
        event.remove(engine.sync_engine, "commit", refuse)
        raise OperationalError("COMMIT", {}, Exception("disk I/O error"))

    event.listen(engine.sync_engine, "commit", refuse)


@pytest.mark.usefixtures("school")
async def test_a_failed_commit_shows_no_success_and_the_card_as_it_is(
    harness: BotHarness, engine: AsyncEngine, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    card = await harness.send(DIRECTOR, f"/start app_{NEWEST_NEW}")
    prompt = await harness.press(DIRECTOR, "✅ Одобрить", card.message_id)
    answers = len(harness.api.calls_of("answerCallbackQuery"))
    fail_next_commit(engine)
    shown = await harness.press(DIRECTOR, "Без комментария", prompt.message_id)

    assert len(harness.api.calls_of("answerCallbackQuery")) == answers + 1  # answered once
    assert harness.last_answer() == {
        "text": "Что-то пошло не так, попробуйте ещё раз.",
        "show_alert": True,
    }
    texts = [call.params.get("text", "") for call in harness.api.calls[-4:]]
    assert not any("одобрена" in str(text) for text in texts)  # no toast, no card saying so
    assert shown.text.startswith("⚠️ Не получилось: ничего не изменено.")
    assert "Статус: Не обработана" in shown.text
    assert "✅ Одобрить" in str(shown.buttons())  # the card as it is: still to decide
    assert await status_of(session_factory, NEWEST_NEW) == "new"
    assert await events_of(session_factory, NEWEST_NEW) == []
    assert await outbox_of(session_factory, NEWEST_NEW) == []
    assert len(harness.errors.records) == 1


@pytest.mark.usefixtures("school")
async def test_the_toast_and_the_card_come_after_the_commit(
    harness: BotHarness, api: FakeBotAPI, engine: AsyncEngine
) -> None:
    """The order of what happened: the decision's COMMIT, then the toast, then the card."""
    order: list[str] = []
    card = await harness.send(DIRECTOR, f"/start app_{NEWEST_NEW}")
    prompt = await harness.press(DIRECTOR, "✅ Одобрить", card.message_id)

    def committed(connection: Any) -> None:
        order.append("commit")

    def called(call: Any) -> None:
        if call.method in ("answerCallbackQuery", "editMessageText", "sendMessage"):
            order.append(call.method)

    event.listen(engine.sync_engine, "commit", committed)
    api.observe(called)
    try:
        await harness.press(DIRECTOR, "Без комментария", prompt.message_id)
    finally:
        event.remove(engine.sync_engine, "commit", committed)
    assert order == ["commit", "answerCallbackQuery", "editMessageText"]
    assert harness.last_answer() == {"text": "Заявка одобрена"}
    harness.assert_no_errors()
