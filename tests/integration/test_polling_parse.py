"""Long polling reads getUpdates' answer as JSON and parses an update only when it takes it:
updates in progress come again with every refresh (the offset stays below them) and are not
handled, nor parsed, again; an update that cannot be read is skipped, not the batch; a poll
asks for no more updates than it can start."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiogram import Dispatcher

from bot.conversation.receipts import Handling, Receipt
from bot.telegram.bot import build_bot
from bot.telegram.polling import Poller, RawGetUpdates, RawUpdate
from tests.fakes.bot_api import FakeBotAPI
from tests.harness import test_settings


def message(update_id: int, text: str) -> RawUpdate:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 0,
            "chat": {"id": 1001, "type": "private", "first_name": "Иван"},
            "from": {"id": 1001, "is_bot": False, "first_name": "Иван"},
            "text": text,
        },
    }


async def test_an_update_taken_is_not_parsed_or_handled_again(
    api: FakeBotAPI, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    bot = build_bot(test_settings(api, "sqlite+aiosqlite://"))
    poller = Poller(bot, Dispatcher())
    handled: list[int] = []
    release = asyncio.Event()

    async def handle(update: Any) -> Any:
        handled.append(update.update_id)
        await release.wait()

    parsed: list[int] = []
    from bot.telegram import polling

    original = polling.Update.model_validate

    def counting(raw: Any, **kwargs: Any) -> Any:
        parsed.append(raw["update_id"])
        return original(raw, **kwargs)

    monkeypatch.setattr(poller, "_handle", handle)
    monkeypatch.setattr(polling.Update, "model_validate", counting)
    try:
        batch = [message(7, "первое"), {"update_id": 8, "message": {"text": 1}}]
        for raw in batch:
            poller._take(raw)
        for raw in [*batch, message(9, "второе")]:  # the refresh: all of them again, and a new one
            poller._take(raw)
        await asyncio.sleep(0)
        assert handled == [7, 9]
        assert parsed == [7, 8, 9]  # 8 could not be read: skipped once, not again
        assert "update 8 could not be read" in caplog.text
        assert poller.offset == 7  # the lowest in progress: nothing is confirmed yet
    finally:
        release.set()
        await asyncio.gather(*poller._tasks.values())
        await bot.session.close()


async def test_the_answer_stays_json(api: FakeBotAPI) -> None:
    bot = build_bot(test_settings(api, "sqlite+aiosqlite://"))
    try:
        api.send_text(1001, "привет")
        [raw] = await bot(RawGetUpdates(timeout=0))
        assert isinstance(raw, dict)
        assert raw["message"]["text"] == "привет"
    finally:
        await bot.session.close()


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 (what it waits for sets no event)
            await asyncio.sleep(0.01)


async def test_a_poll_asks_for_no_more_than_it_can_start(
    api: FakeBotAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With as many updates in hand as it keeps (four times the slots: running and next in
    line), the updates waiting at Telegram are not fetched (and parsed) with each refresh: a
    poll asks for those it knows from the offset on and new ones up to that."""
    bot = build_bot(test_settings(api, "sqlite+aiosqlite://"))
    poller = Poller(bot, Dispatcher(), concurrency=2, refresh=0.05)
    handled: list[int] = []
    release = asyncio.Event()

    async def handle(update: Any) -> Any:
        handled.append(update.update_id)
        await release.wait()
        return Receipt(Handling.HANDLED)

    monkeypatch.setattr(poller, "_handle", handle)
    for user in range(1001, 1011):
        api.add_user(user, first_name="Пользователь")
        api.send_text(user, "привет")
    first = api.pending_updates()[0]["update_id"]
    polling = asyncio.create_task(poller.run())
    try:
        await until(lambda: len(api.calls_of("getUpdates")) >= 4)  # the first poll, refreshes
        limits = [call.params.get("limit") for call in api.calls_of("getUpdates")]
        assert limits[0] == 8  # nothing known yet: two running and six next in line
        assert set(limits[1:]) == {8}  # the eight in hand come again, the other two stay away
        assert handled == [first, first + 1]  # two slots
        assert sorted(poller._intake.states) == list(range(first, first + 8))
        assert not poller._worth_a_poll()  # no slot's worth of room: a finish waits for more
        release.set()
        await until(lambda: len(handled) == 10)
        assert sorted(handled) == list(range(first, first + 10))  # each once
    finally:
        release.set()
        poller.stop()
        await polling
        await bot.session.close()
