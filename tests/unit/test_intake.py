"""The intake both front ends share (bot/conversation/intake.py): an update counts as taken
while in progress or acknowledged, comes again otherwise, and a stop cuts a poll short, takes
no more webhook updates and cancels what outlasts the grace period."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest

from bot.conversation.intake import Messenger, PollingIntake, UpdateState, WebhookIntake
from bot.conversation.receipts import Handling, Receipt

TEST = Messenger("test updates", "the test", logging.getLogger("tests.intake"))


async def test_an_acknowledged_update_stays_taken_and_a_failed_one_comes_again() -> None:
    intake: PollingIntake[int] = PollingIntake(2, TEST)
    release = asyncio.Event()

    async def handled() -> Receipt:
        await release.wait()
        return Receipt(Handling.HANDLED)

    async def unrecorded() -> Receipt:
        return Receipt()

    intake.start(1, handled, name="update-1")
    assert intake.taken(1)
    assert not intake.acknowledged(1)
    release.set()
    await asyncio.gather(*intake.tasks.values())
    assert intake.acknowledged(1)
    assert intake.taken(1)
    assert intake.tasks == {}
    assert intake.retry_pause == 0.0

    intake.start(2, unrecorded, name="update-2")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert intake.states[2] is UpdateState.AGAIN
    assert not intake.taken(2)
    assert intake.retry_pause > 0.0


async def test_at_most_concurrency_updates_run_at_once() -> None:
    intake: PollingIntake[int] = PollingIntake(2, TEST)
    running, most = 0, 0
    release = asyncio.Event()

    async def handle() -> Receipt:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await release.wait()
        running -= 1
        return Receipt(Handling.HANDLED)

    for key in range(5):
        intake.start(key, handle, name=f"update-{key}")
    await asyncio.sleep(0.01)
    assert most == 2
    release.set()
    await asyncio.gather(*intake.tasks.values())
    assert all(intake.acknowledged(key) for key in range(5))


async def test_a_stop_cuts_a_poll_short_and_the_pauses_grow() -> None:
    intake: PollingIntake[int] = PollingIntake(1, TEST)
    assert await intake.unless_stopped(asyncio.sleep(0, result="answer")) == "answer"
    asyncio.get_running_loop().call_later(0.01, intake.stop)
    assert await intake.unless_stopped(asyncio.sleep(10)) is None
    assert await intake.wait_turn(10.0)  # nothing in progress, no pause: at once
    first = intake.poll_failed()
    assert intake.poll_failed() > first > 0.0
    intake.poll_succeeded()
    assert intake.poll_pause == 0.0


async def test_a_stopping_webhook_takes_nothing_and_cancels_what_outlasts_the_grace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    intake = WebhookIntake(1, TEST)
    started = asyncio.Event()

    async def stuck() -> Receipt:
        started.set()
        await asyncio.Event().wait()
        return Receipt(Handling.HANDLED)

    async def quick() -> Receipt:
        return Receipt(Handling.HANDLED)

    assert (await intake.receive(quick, name="quick")) == Receipt(Handling.HANDLED)
    delivery = asyncio.create_task(intake.receive(stuck, name="stuck"))
    await started.wait()
    assert intake.in_flight == 1
    with caplog.at_level(logging.WARNING, logger="tests.intake"):
        await intake.stop(grace_seconds=0.01)
    assert await delivery == Receipt()  # cut off: not acknowledged, delivered again
    assert intake.in_flight == 0
    assert "1 test updates still in progress" in caplog.text
    assert "cancelled, the test delivers them again" in caplog.text
    assert await intake.receive(quick, name="late") is None  # stopping: not taken


async def test_a_drain_does_not_wait_for_a_handling_that_ignores_its_cancellation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("bot.conversation.intake.CANCEL_GRACE_SECONDS", 0.05)
    intake: PollingIntake[int] = PollingIntake(1, TEST)
    release = asyncio.Event()

    async def stubborn() -> Receipt:
        try:
            await release.wait()
        except asyncio.CancelledError:  # shielded work, say: it goes on after the cancel
            await release.wait()
        return Receipt(Handling.HANDLED)

    intake.start(1, stubborn, name="update-1")
    await asyncio.sleep(0)
    await intake.drain(0.01)
    assert not intake.acknowledged(1)  # the drain returned while it still ran
    release.set()
    await asyncio.gather(*intake.tasks.values())


def start_held(intake: PollingIntake[int], releases: dict[int, asyncio.Event]) -> None:
    """An update of each key in progress until its event is set, then handled."""

    def handler(key: int) -> Callable[[], Awaitable[Receipt]]:
        async def handle() -> Receipt:
            await releases[key].wait()
            return Receipt(Handling.HANDLED)

        return handle

    for key in releases:
        intake.start(key, handler(key), name=f"update-{key}")


async def test_an_update_finished_during_a_poll_brings_the_next_poll_at_once() -> None:
    """While updates are in progress a turn waits `refresh`, cut short when one finishes; one
    that finished while the poll was under way brings the next poll at once (what it freed is
    asked for without waiting `refresh`)."""
    intake: PollingIntake[int] = PollingIntake(3, TEST)
    releases = {key: asyncio.Event() for key in (1, 2, 3)}
    start_held(intake, releases)
    turn = asyncio.create_task(intake.wait_turn(3600.0))
    await asyncio.sleep(0.05)
    assert not turn.done()  # nothing finished: it waits
    releases[1].set()
    assert await asyncio.wait_for(turn, 5) is True  # cut short by the finish
    # The poll is under way; update 2 finishes meanwhile, update 3 is still in progress.
    releases[2].set()
    await asyncio.sleep(0.01)
    assert intake.acknowledged(2)
    assert intake.tasks.keys() == {3}
    assert await asyncio.wait_for(intake.wait_turn(3600.0), 5) is True
    releases[3].set()
    await asyncio.gather(*intake.tasks.values())


async def test_a_finish_brings_the_poll_only_once_it_is_worth_making() -> None:
    """`ready` says whether a poll is worth making now (Telegram's: a slot's worth of room in
    hand): a finish that leaves it False does not end the wait, `refresh` still does."""
    intake: PollingIntake[int] = PollingIntake(3, TEST)
    releases = {key: asyncio.Event() for key in (1, 2)}
    start_held(intake, releases)
    assert await intake.wait_turn(0.01)  # nothing finished: `refresh` ends the wait
    turn = asyncio.create_task(intake.wait_turn(3600.0, ready=lambda: len(intake.tasks) < 1))
    releases[1].set()
    await asyncio.sleep(0.05)
    assert not turn.done()  # one finished, one still in progress: not worth a poll yet
    releases[2].set()
    assert await asyncio.wait_for(turn, 5) is True  # nothing in progress: poll at once
    limited = asyncio.create_task(intake.wait_turn(0.05, ready=lambda: False))
    assert await asyncio.wait_for(limited, 5) is True  # nothing in progress: at once too
