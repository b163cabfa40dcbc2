"""Presses at the same moment: two directors on one application, one user tapping twice."""

from __future__ import annotations

import asyncio

import pytest
from aiogram.types import Update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.conversation.locks import InProcessLocks
from storage.states import StateKey
from tests.director_data import (
    DIRECTOR,
    NEWEST_NEW,
    SECOND_DIRECTOR,
    events_of,
    outbox_of,
    seed_applications,
    status_of,
)
from tests.harness import BotHarness

pytestmark = pytest.mark.every_backend  # presses at the same moment: the database's locks decide

LOST_TO_APPROVAL = "Заявка №39737 уже обработана: статус «Подтверждена руководителем ОО»"
LOST_TO_CANCELLATION = "Заявка №39737 уже обработана: статус «Отменена»"


@pytest.fixture
async def school(seeded: None, session_factory: async_sessionmaker[AsyncSession]) -> None:
    await seed_applications(session_factory)


async def feed_at_once(harness: BotHarness) -> None:
    """Feed every queued update concurrently, as a polling dispatcher does."""
    updates = [
        Update.model_validate(raw, context={"bot": harness.bot})
        for raw in harness.api.take_updates()
    ]
    assert len(updates) == 2
    await asyncio.gather(*(harness.dp.feed_update(harness.bot, update) for update in updates))


@pytest.mark.parametrize("cancel_with", ["button", "text"])
@pytest.mark.usefixtures("school")
async def test_two_directors_decide_at_once_and_one_wins(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession], cancel_with: str
) -> None:
    approving = await harness.send(DIRECTOR, f"/start app_{NEWEST_NEW}")
    approving = await harness.press(approving.chat_id, "✅ Одобрить", approving.message_id)
    cancelling = await harness.send(SECOND_DIRECTOR, f"/start app_{NEWEST_NEW}")
    await harness.press(cancelling.chat_id, "❌ Отменить", cancelling.message_id)
    cancelling = await harness.press(cancelling.chat_id, "Да, отменить", cancelling.message_id)

    harness.api.press(DIRECTOR, "Без комментария", approving.message_id)
    if cancel_with == "button":
        harness.api.press(SECOND_DIRECTOR, "Без комментария", cancelling.message_id)
    else:
        harness.api.send_text(SECOND_DIRECTOR, "Отменяю: заявка подана дважды")
    await feed_at_once(harness)

    [event] = await events_of(session_factory, NEWEST_NEW)  # one winner, one history row
    status = await status_of(session_factory, NEWEST_NEW)
    assert (event.action, status) in [("approve", "approved"), ("cancel", "cancelled")]
    [push] = await outbox_of(session_factory, NEWEST_NEW)  # one notification, of the winner
    assert (push.account_id, push.event_id) == (3, event.id)

    approver = harness.api.last_bot_message(DIRECTOR).text
    canceller = harness.api.last_bot_message(SECOND_DIRECTOR).text
    if status == "approved":
        assert approver.startswith("✅ Заявка №39737 одобрена.")
        assert canceller.startswith(LOST_TO_APPROVAL)  # the loser sees the current status
        assert "Статус: Подтверждена руководителем ОО" in canceller
    else:
        assert canceller.startswith("❌ Заявка №39737 отменена.")
        assert approver.startswith(LOST_TO_CANCELLATION)
        assert "Статус: Отменена" in approver
    harness.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_a_double_tap_is_handled_once_then_sees_the_result(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    assert isinstance(harness.dp["runner"].locks, InProcessLocks)
    prompt = await harness.send(DIRECTOR, f"/start app_{NEWEST_NEW}")
    prompt = await harness.press(prompt.chat_id, "✅ Одобрить", prompt.message_id)
    harness.api.press(DIRECTOR, "Без комментария", prompt.message_id)
    harness.api.press(DIRECTOR, "Без комментария", prompt.message_id)
    await feed_at_once(harness)

    assert len(await events_of(session_factory, NEWEST_NEW)) == 1
    first, second = (
        {key: call.params.get(key) for key in ("text", "show_alert")}
        for call in harness.api.calls_of("answerCallbackQuery")[-2:]
    )
    # One at a time: the second press meets the first one's result, never a half-done state.
    assert first == {"text": "Заявка одобрена", "show_alert": None}  # a toast
    assert second == {"text": LOST_TO_APPROVAL, "show_alert": True}
    harness.assert_no_errors()


async def test_user_event_isolation_serialises_one_user_and_frees_the_lock() -> None:
    isolation = InProcessLocks()
    first_user = StateKey(bot_id=1, chat_id=11, user_id=11)
    second_user = StateKey(bot_id=1, chat_id=12, user_id=12)
    log: list[str] = []
    holding, release = asyncio.Event(), asyncio.Event()

    async def update(key: StateKey, name: str, hold: bool = False) -> None:
        async with isolation.lock(key):
            log.append(f"{name} in")
            if hold:
                holding.set()
                await release.wait()
            log.append(f"{name} out")

    first = asyncio.create_task(update(first_user, "a1", hold=True))
    await holding.wait()
    second = asyncio.create_task(update(first_user, "a2"))
    await update(second_user, "b")  # another user is not kept waiting
    for _ in range(10):
        await asyncio.sleep(0)
    assert "a2 in" not in log
    assert isolation.users() == 1
    release.set()
    await asyncio.gather(first, second)
    assert log == ["a1 in", "b in", "b out", "a1 out", "a2 in", "a2 out"]
    assert isolation.users() == 0  # no lock left behind

    with pytest.raises(RuntimeError):
        async with isolation.lock(first_user):
            raise RuntimeError("handler failed")
    assert isolation.users() == 0
    async with isolation.lock(first_user):  # and the user is not locked out afterwards
        pass
