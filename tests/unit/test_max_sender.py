"""Pushes to MAX (bot/max/sender.py): what MAX answers decides what happens to an outbox row,
against the MAX Bot API double."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.max.client import MaxClient
from bot.max.sender import MaxSender
from bot.screens.screen import Screen
from bot.settings import Settings
from services.outbox import Blocked, Failed, Retry, RetryAfter, Sent
from storage.models import OutboxMessage
from tests.fakes.max_api import FakeMaxAPI
from tests.max_harness import max_settings

USER = 7_000_001


@pytest.fixture
async def max_api() -> AsyncIterator[FakeMaxAPI]:
    async with FakeMaxAPI() as api:
        api.add_user(USER, "Ирина")
        yield api


@pytest.fixture
async def sender(max_api: FakeMaxAPI) -> AsyncIterator[MaxSender]:
    settings: Settings = max_settings(max_api, "sqlite+aiosqlite:///:memory:")
    client = MaxClient(max_api.token, max_api.url)
    yield MaxSender(client, settings, send_timeout=0.5)
    await client.close()


def row(chat_id: int | None) -> OutboxMessage:
    return OutboxMessage(id=1, channel="max", kind="status_changed", chat_id=chat_id, attempts=0)


PUSH = Screen("<b>Заявка №39744</b>: статус «Подтверждена руководителем ОО»")


async def test_a_push_is_sent_to_the_dialog(max_api: FakeMaxAPI, sender: MaxSender) -> None:
    outcome = await sender.send(row(max_api.chat_id_of(USER)), PUSH)
    assert outcome == Sent(None)
    message = max_api.last_bot_message(USER)
    assert message.text == "Заявка №39744: статус «Подтверждена руководителем ОО»"
    assert message.markup[0]["type"] == "strong"


async def test_a_stopped_bot_blocks_the_chat(max_api: FakeMaxAPI, sender: MaxSender) -> None:
    max_api.stop_bot(USER)
    outcome = await sender.send(row(max_api.chat_id_of(USER)), PUSH)
    assert isinstance(outcome, Blocked)
    max_api.start_bot(USER)
    max_api.remove_dialog(USER)
    assert isinstance(await sender.send(row(max_api.chat_id_of(USER)), PUSH), Blocked)


@pytest.mark.parametrize(
    ("status", "expected"), [(429, RetryAfter), (500, Retry), (503, Retry), (400, Failed)]
)
async def test_maxs_refusals(
    max_api: FakeMaxAPI, sender: MaxSender, status: int, expected: type
) -> None:
    max_api.fail_next("POST /messages", status=status)
    outcome = await sender.send(row(max_api.chat_id_of(USER)), PUSH)
    assert isinstance(outcome, expected)
    if isinstance(outcome, RetryAfter):
        assert not outcome.overall  # the dialog waits, not every send


@pytest.mark.parametrize(
    ("status", "code", "message", "expected"),
    [
        (400, "proto.payload", "dialog button text is too long", Failed),
        (400, "dialog.settings", "invalid dialog", Failed),
        (400, "dialog.not.found", "error.dialog.notfound", Blocked),
        (404, "not.found", "Chat 1 not found", Blocked),
        (403, "chat.denied", "error.dialog.suspended", Blocked),
    ],
)
async def test_only_a_stopped_bot_or_a_gone_dialog_blocks_the_chat(
    max_api: FakeMaxAPI,
    sender: MaxSender,
    status: int,
    code: str,
    message: str,
    expected: type,
) -> None:
    """Not any error that mentions a dialog: that would block the binding and hold its rows."""
    max_api.fail_next("POST /messages", status=status, code=code, message=message)
    outcome = await sender.send(row(max_api.chat_id_of(USER)), PUSH)
    assert isinstance(outcome, expected)


async def test_a_timeout_is_retried(max_api: FakeMaxAPI, sender: MaxSender) -> None:
    max_api.timeout_next("POST /messages", seconds=2.0)
    outcome = await sender.send(row(max_api.chat_id_of(USER)), PUSH)
    assert isinstance(outcome, Retry)
    assert outcome.reason.startswith("network")


async def test_a_rejected_token_pauses_every_send(max_api: FakeMaxAPI) -> None:
    client = MaxClient("rejected-token-0123456789", max_api.url)
    try:
        sender = MaxSender(client, max_settings(max_api, "sqlite+aiosqlite:///:memory:"))
        outcome = await sender.send(row(max_api.chat_id_of(USER)), PUSH)
    finally:
        await client.close()
    assert isinstance(outcome, RetryAfter)
    assert outcome.overall


async def test_a_row_without_a_chat_fails(sender: MaxSender) -> None:
    assert isinstance(await sender.send(row(None), PUSH), Failed)
