"""MAX updates received exactly once: long polling with markers (bot/max/polling.py) and the
webhook (bot/max/webhook.py), against the MAX Bot API double, with the real runner.

A marker passes an update only once its handling is acknowledged: an update whose handling did
not get through comes again; one handled before is skipped by the record of its identity
(a restart, a redelivery). The webhook answers 200 only once the update is handled, checks the
secret on every request, and a redelivered event is a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest
from aiohttp import web

from bot.conversation.receipts import Handling, Receipt
from bot.max.feed import Attempts
from bot.max.front import MaxFront
from bot.max.polling import MaxPoller
from bot.max.updates import JsonDict, update_identity
from bot.max.webhook import MAX_WEBHOOK_PATH, MaxWebhookReceiver, subscribe, unsubscribe_all
from storage.poll_markers import PollMarkers
from storage.updates import UpdateKey, was_handled
from tests.fakes.max_api import Call, FakeMaxAPI
from tests.max_harness import MaxHarness

pytestmark = pytest.mark.every_backend  # the record of handled events is the database's

USERS = (7_000_001, 7_000_002, 7_000_003)
SECRET = "max-webhook-secret-0123456789-abcdef"
LIMIT = 15.0


@pytest.fixture
async def max_api() -> AsyncIterator[FakeMaxAPI]:
    async with FakeMaxAPI(poll_timeout=1.0) as api:
        for user in USERS:
            api.add_user(user, f"Пользователь{user % 10}")
        yield api


async def until(condition: Callable[[], bool], limit: float = LIMIT) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def replies(api: FakeMaxAPI, user: int) -> list[str]:
    return [m.text.split("\n", 1)[0] for m in api.chat(user) if m.from_bot]


@contextlib.asynccontextmanager
async def polling(poller: MaxPoller) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(poller.run())
    try:
        yield task
    finally:
        poller.stop()
        await asyncio.wait_for(task, LIMIT)


# -- long polling ----------------------------------------------------------------------------

PERSONAL = "Секретов-Личный"
# Updates no reading of MAX's schema allows: each once raised out of the feed or the poll loop.
MALFORMED: list[JsonDict] = [
    {"update_type": "message_callback", "timestamp": 1, "callback": "x"},
    {"update_type": "message_callback", "callback": {"callback_id": "c1", "user": "x"}},
    {"update_type": "message_created", "message": {"body": PERSONAL, "recipient": 5}},
    {"update_type": "message_created", "message": "x", "timestamp": [PERSONAL]},
    {"update_type": "bot_started", "user": {"user_id": "x"}, "chat_id": {}, "name": PERSONAL},
    {
        "update_type": "message_created",
        "message": {
            "recipient": {"chat_type": "dialog", "chat_id": "x"},
            "sender": {"user_id": 1, "first_name": PERSONAL},
            "body": {"mid": "m", "text": "a"},
        },
    },
]


async def test_a_malformed_update_is_ignored_and_passed_and_the_next_one_handled(
    max_harness: MaxHarness, caplog: pytest.LogCaptureFixture
) -> None:
    api = max_harness.api
    for malformed in MALFORMED:
        api.queue_update(malformed)
    api.send_text(USERS[0], "/help")
    poller = MaxPoller(max_harness.client, max_harness.feed, timeout=1, refresh=0.05)
    async with polling(poller) as task:
        await until(lambda: api.pending_updates() == [] and len(replies(api, USERS[0])) == 1)
        assert not task.done()  # the loop goes on
        api.send_text(USERS[1], "/help")
        await until(lambda: api.pending_updates() == [] and len(replies(api, USERS[1])) == 1)
    assert PERSONAL not in caplog.text  # logged by identity and type, never by contents


async def test_an_update_whose_handling_keeps_failing_is_recorded_as_failed_and_passed(
    max_harness: MaxHarness,
) -> None:
    api = max_harness.api
    tries = 0

    async def feed(update: JsonDict) -> Receipt:
        nonlocal tries
        if update.get("update_type") == "bot_started":
            tries += 1
            raise RuntimeError("a handling that never gets through")
        return await max_harness.feed(update)

    stuck = api.start_bot(USERS[0])
    api.send_text(USERS[1], "/help")
    poller = MaxPoller(
        max_harness.client,
        feed,
        timeout=1,
        refresh=0.05,
        attempts=Attempts(max_harness.feed.give_up, attempts=2),
    )
    async with polling(poller) as task:
        await until(lambda: api.pending_updates() == [] and len(replies(api, USERS[1])) == 1)
        assert not task.done()
    assert tries == 2
    identity = update_identity(stuck)
    assert identity is not None
    async with max_harness.session_factory() as session:
        assert await was_handled(session, UpdateKey("max", identity))  # not handled again


async def test_polling_handles_each_update_once_and_confirms_it(
    max_harness: MaxHarness,
) -> None:
    api = max_harness.api
    poller = MaxPoller(max_harness.client, max_harness.feed, timeout=1, refresh=0.05)
    for user in USERS:
        api.send_text(user, "/help")
        api.start_bot(user)
    async with polling(poller):
        await until(lambda: all(len(replies(api, u)) == 2 for u in USERS))
        api.send_text(USERS[0], "ещё")
        await until(lambda: len(replies(api, USERS[0])) == 3)
    assert api.pending_updates() == []  # every update confirmed by a marker
    assert all(call.query.get("types") for call in api.calls_of("GET /updates"))
    max_harness.assert_no_errors()


async def test_an_update_not_acknowledged_comes_again_and_others_wait_behind_its_marker(
    max_harness: MaxHarness,
) -> None:
    api = max_harness.api
    attempts: dict[str, int] = {}

    async def flaky(update: JsonDict) -> Receipt:
        text = (update.get("message") or {}).get("body", {}).get("text", "")
        attempts[text] = attempts.get(text, 0) + 1
        if text == "/help" and attempts[text] == 1:
            return Receipt()  # neither handled nor recorded: the database was away
        return await max_harness.feed(update)

    poller = MaxPoller(max_harness.client, flaky, timeout=1, refresh=0.05)
    api.send_text(USERS[0], "/help")
    api.send_text(USERS[1], "/start")
    async with polling(poller):
        await until(lambda: attempts.get("/help", 0) == 2 and api.pending_updates() == [])
    assert attempts == {"/help": 2, "/start": 1}  # the other one was not handled again
    assert len(replies(api, USERS[0])) == 1
    assert len(replies(api, USERS[1])) == 1


async def test_a_restart_gets_the_unconfirmed_updates_and_skips_the_handled_ones(
    max_harness: MaxHarness,
) -> None:
    """A process killed after handling an update but before its marker was passed: the next
    process gets it again and the record of its identity skips it."""
    api = max_harness.api
    api.send_text(USERS[0], "/help")
    update = api.pending_updates()[0]
    assert (await max_harness.feed(update)).outcome is Handling.HANDLED  # not confirmed to MAX
    api.send_text(USERS[1], "/help")
    poller = MaxPoller(max_harness.client, max_harness.feed, timeout=1, refresh=0.05)
    async with polling(poller):
        await until(lambda: api.pending_updates() == [] and len(replies(api, USERS[1])) == 1)
    assert len(replies(api, USERS[0])) == 1  # handled once, by the first process
    max_harness.assert_no_errors()


async def test_updates_queued_while_the_bot_is_down_are_all_handled_after_a_restart(
    max_harness: MaxHarness,
) -> None:
    """The confirmed marker is kept in the database: the restarted loop asks with it, so a MAX
    that answers a poll without a marker with only the latest update loses nothing."""
    api = max_harness.api
    api.unmarked_poll_gives_last_only = True

    def poller() -> MaxPoller:
        markers = PollMarkers(max_harness.session_factory, "max", api.bot_id)
        return MaxPoller(
            max_harness.client, max_harness.feed, timeout=1, refresh=0.05, markers=markers
        )

    api.send_text(USERS[0], "/help")
    async with polling(poller()):
        await until(lambda: api.pending_updates() == [] and len(replies(api, USERS[0])) == 1)
    # The bot is down: users write.
    for user in USERS:
        api.send_text(user, "/start")
    async with polling(poller()):
        await until(lambda: api.pending_updates() == [] and len(replies(api, USERS[0])) == 2)
        await until(lambda: [len(replies(api, u)) for u in USERS] == [2, 1, 1])
    assert [len(replies(api, u)) for u in USERS] == [2, 1, 1]
    max_harness.assert_no_errors()


async def test_a_stop_drains_and_confirms(max_harness: MaxHarness) -> None:
    api = max_harness.api
    gate = asyncio.Event()

    async def slow(update: JsonDict) -> Receipt:
        await gate.wait()
        return await max_harness.feed(update)

    poller = MaxPoller(max_harness.client, slow, timeout=1, refresh=0.05)
    api.send_text(USERS[0], "/help")
    task = asyncio.create_task(poller.run())
    await until(lambda: bool(api.calls_of("GET /updates")))
    await asyncio.sleep(0.2)
    poller.stop()
    gate.set()
    await asyncio.wait_for(task, LIMIT)
    assert len(replies(api, USERS[0])) == 1
    assert api.pending_updates() == []  # confirmed on the way out


async def test_a_stop_confirms_a_marker_whose_poll_did_not_get_through(
    max_harness: MaxHarness,
) -> None:
    """The poll that carried the marker of a handled update failed (MAX never took it), and the
    stop came before the next one: the stop confirms the marker, so the update is not left with
    MAX to come again."""
    api = max_harness.api
    handled: list[JsonDict] = []
    carried: list[str] = []

    async def feed(update: JsonDict) -> Receipt:
        receipt = await max_harness.feed(update)
        handled.append(update)
        api.fail_next("GET /updates", status=503)  # the poll that carries its marker
        return receipt

    poller = MaxPoller(max_harness.client, feed, timeout=1, refresh=30)

    def on_call(call: Call) -> None:
        if call.endpoint == "GET /updates" and call.status == 503:
            carried.append(call.query.get("marker", ""))
            poller.stop()

    api.observe(on_call)
    api.send_text(USERS[0], "/help")
    task = asyncio.create_task(poller.run())
    await asyncio.wait_for(task, LIMIT)
    assert len(handled) == 1
    assert carried[0]  # the failed poll carried a marker
    assert api.pending_updates() == []  # confirmed on the way out
    assert api.calls_of("GET /updates")[-1].query["marker"] == carried[0]
    assert len(replies(api, USERS[0])) == 1


async def test_a_polling_front_end_stops_without_waiting_out_the_long_poll(
    max_harness: MaxHarness,
) -> None:
    """MAX holds a long poll up to its timeout (30 s here, the front end's own); a stop ends the
    front end at once, while the poll is still held: the request is given up, not waited out."""
    api = max_harness.api
    front = MaxFront(max_harness.settings, max_harness.runner, max_harness.client)
    await front.start()
    stop = asyncio.Event()
    serving = asyncio.create_task(front.serve(stop))
    await until(lambda: api.long_polls_waiting == 1)
    stop.set()
    await asyncio.wait_for(serving, LIMIT)
    assert api.long_polls_waiting == 1  # still held by MAX when the front end had stopped
    assert not [call for call in api.calls_of("GET /updates") if call.query["timeout"] != "0"]


async def test_polling_removes_a_webhook_subscription(max_harness: MaxHarness) -> None:
    await subscribe(max_harness.client, "http://127.0.0.1:9/max/webhook", SECRET)
    await unsubscribe_all(max_harness.client)
    assert max_harness.api.subscriptions == []


# -- webhook ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def webhook_server(receiver: MaxWebhookReceiver) -> AsyncIterator[str]:
    app = web.Application()
    receiver.mount(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}{MAX_WEBHOOK_PATH}"
    finally:
        await receiver.stop()
        await runner.cleanup()


async def test_webhook_delivers_with_the_secret_and_answers_once_handled(
    max_harness: MaxHarness,
) -> None:
    api = max_harness.api
    receiver = MaxWebhookReceiver(max_harness.feed, SECRET)
    async with webhook_server(receiver) as url:
        await subscribe(max_harness.client, url, SECRET)
        assert api.subscriptions[0]["secret"] == SECRET
        assert api.subscriptions[0]["update_types"]
        api.send_text(USERS[0], "/help")
        api.start_bot(USERS[1])
        assert await api.deliver_webhook() == [200, 200]
        assert len(replies(api, USERS[0])) == 1
        assert len(replies(api, USERS[1])) == 1
        # MAX delivers an event again (it did not see our 200): handled once all the same.
        api.send_text(USERS[2], "/help")
        update = api.pending_updates()[0]
        assert await api.deliver_to(url, update, SECRET) == 200
        assert await api.deliver_webhook() == [200]
        assert len(replies(api, USERS[2])) == 1
    max_harness.assert_no_errors()


async def test_webhook_refuses_a_wrong_or_missing_secret_and_a_non_update(
    max_harness: MaxHarness,
) -> None:
    api = max_harness.api
    receiver = MaxWebhookReceiver(max_harness.feed, SECRET)
    async with webhook_server(receiver) as url:
        update = api.send_text(USERS[0], "/help")
        assert await api.deliver_to(url, update) == 401
        assert await api.deliver_to(url, update, SECRET[:-1] + "x") == 401
    assert replies(api, USERS[0]) == []


async def test_webhook_answers_200_to_an_authenticated_update_that_cannot_be_read(
    max_harness: MaxHarness, caplog: pytest.LogCaptureFixture
) -> None:
    """Anything else would make MAX deliver it again for 8 hours: it would never read."""
    api = max_harness.api
    receiver = MaxWebhookReceiver(max_harness.feed, SECRET)
    async with webhook_server(receiver) as url:
        for malformed in MALFORMED:
            assert await api.deliver_to(url, malformed, SECRET) == 200
        assert await api.deliver_to(url, {"hello": "world"}, SECRET) == 200
        update = api.send_text(USERS[0], "/help")
        assert await api.deliver_to(url, update, SECRET) == 200
    assert len(replies(api, USERS[0])) == 1
    assert PERSONAL not in caplog.text


async def test_webhook_records_an_update_whose_handling_keeps_failing_and_answers_200(
    max_harness: MaxHarness,
) -> None:
    """MAX would deliver it again every 30-60 s for 8 hours, then unsubscribe the bot."""
    api = max_harness.api
    tries = 0

    async def feed(update: JsonDict) -> Receipt:
        nonlocal tries
        if update.get("update_type") == "bot_started":
            tries += 1
            raise RuntimeError("a handling that never gets through")
        return await max_harness.feed(update)

    attempts = Attempts(max_harness.feed.give_up, attempts=3)
    receiver = MaxWebhookReceiver(feed, SECRET, attempts)
    async with webhook_server(receiver) as url:
        stuck = api.start_bot(USERS[0])
        assert [await api.deliver_to(url, stuck, SECRET) for _ in range(3)] == [503, 503, 200]
        other = api.send_text(USERS[1], "/help")
        assert await api.deliver_to(url, other, SECRET) == 200
    assert tries == 3
    assert replies(api, USERS[0]) == []
    assert len(replies(api, USERS[1])) == 1
    identity = update_identity(stuck)
    assert identity is not None
    async with max_harness.session_factory() as session:
        assert await was_handled(session, UpdateKey("max", identity))


async def test_webhook_answers_503_until_the_update_is_handled(max_harness: MaxHarness) -> None:
    api = max_harness.api
    failing = True

    async def feed(update: JsonDict) -> Receipt:
        if failing:
            return Receipt()  # could be neither handled nor recorded
        return await max_harness.feed(update)

    receiver = MaxWebhookReceiver(feed, SECRET)
    async with webhook_server(receiver) as url:
        await subscribe(max_harness.client, url, SECRET)
        api.send_text(USERS[0], "/help")
        assert await api.deliver_webhook() == [503]
        assert len(api.pending_updates()) == 1  # MAX keeps it and delivers it again
        failing = False
        assert await api.deliver_webhook() == [200]
    assert len(replies(api, USERS[0])) == 1
