"""The MAX Bot API test double, driven through maxapi's own ``Bot`` over HTTP."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from maxapi import Bot, Dispatcher
from maxapi.client.default import DefaultConnectionProperties
from maxapi.enums.parse_mode import TextFormat
from maxapi.enums.update import UpdateType
from maxapi.enums.upload_type import UploadType
from maxapi.exceptions.max import InvalidToken, MaxApiError
from maxapi.types.attachments.buttons import (
    CallbackButton,
    LinkButton,
    MessageButton,
    OpenAppButton,
    RequestContactButton,
)
from maxapi.types.attachments.buttons.attachment_button import AttachmentButton
from maxapi.types.input_media import InputMediaBuffer
from maxapi.types.updates import UpdateUnionAdapter
from maxapi.types.updates.bot_started import BotStarted
from maxapi.types.updates.message_callback import MessageCallback, MessageForCallback
from maxapi.types.updates.message_created import MessageCreated
from maxapi.utils.inline_keyboard import InlineKeyboardBuilder
from maxapi.webhook.aiohttp import AiohttpMaxWebhook

from services.clock import ManualClock
from tests.fakes.max_api import SECRET_HEADER, Call, FakeMaxAPI, parse_max_html

TOKEN = "f9LHodD0cOJ-test-max-token"
USER = 1001
OTHER = 1002
BOT_ID = 229229229


def keyboard(*labels: str) -> AttachmentButton:
    builder = InlineKeyboardBuilder()
    builder.row(*(CallbackButton(text=label, payload=f"cb:{label}") for label in labels))
    return builder.as_markup()


def rows(*row_sizes: int, button: Callable[[int], Any] | None = None) -> AttachmentButton:
    make = button or (lambda n: CallbackButton(text=f"b{n}", payload=f"p{n}"))
    numbers = itertools.count(1)
    builder = InlineKeyboardBuilder()
    for size in row_sizes:
        builder.row(*(make(next(numbers)) for _ in range(size)))
    return builder.as_markup()


async def send(bot: Bot, **message: Any) -> str:
    """Send through maxapi; the new message's mid."""
    sent = await bot.send_message(**message)
    assert sent is not None
    assert sent.message.body is not None
    return sent.message.body.mid


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def api(clock: ManualClock) -> AsyncIterator[FakeMaxAPI]:
    def seconds() -> float:
        return clock.now().timestamp()

    async with FakeMaxAPI(TOKEN, bot_id=BOT_ID, clock=seconds, wall_clock=seconds) as fake:
        fake.add_user(USER, "Иван", "Петров", username="ivan")
        fake.add_user(OTHER, "Мария")
        yield fake


@pytest.fixture
async def make_bot(api: FakeMaxAPI) -> AsyncIterator[Callable[..., Bot]]:
    bots: list[Bot] = []

    def make(*, token: str = TOKEN, base: str | None = None, **connection: Any) -> Bot:
        # maxapi retries 502/503/504 and connection errors itself (3 times, 1-2-4 s): off here.
        settings = DefaultConnectionProperties(**{"max_retries": 0, **connection})
        bot = Bot(token, default_connection=settings)
        bot.set_api_url(base or api.url)
        bots.append(bot)
        return bot

    yield make
    for bot in bots:
        await bot.close_session()


async def raw(
    http: aiohttp.ClientSession,
    api: FakeMaxAPI,
    method: str,
    path: str,
    *,
    token: str = TOKEN,
    **kwargs: Any,
) -> tuple[int, Any]:
    async with http.request(
        method, f"{api.url}{path}", headers={"Authorization": token}, **kwargs
    ) as response:
        return response.status, await response.json()


async def updates(bot: Bot, **params: Any) -> tuple[list[dict[str, Any]], int]:
    answer = await bot.get_updates(timeout=0, **params)
    return answer["updates"], answer["marker"]


# -- bot, auth ---------------------------------------------------------------------------------


async def test_get_me_describes_the_bot(bot: Bot, api: FakeMaxAPI) -> None:
    me = await bot.get_me()

    assert (me.user_id, me.is_bot, me.username) == (BOT_ID, True, "dpo_test_bot")
    assert [call.endpoint for call in api.calls] == ["GET /me"]


async def test_wrong_token_is_401_with_max_error_shape(
    make_bot: Callable[..., Bot], api: FakeMaxAPI, http: aiohttp.ClientSession
) -> None:
    with pytest.raises(InvalidToken, match=r"verify\.token"):
        await make_bot(token="wrong").get_me()

    invalid = {"code": "verify.token", "message": "Invalid access_token"}
    assert await raw(http, api, "GET", "/me", token="wrong") == (401, invalid)
    assert await raw(http, api, "GET", "/me", token=f"Bearer {TOKEN}") == (401, invalid)
    # MAX no longer accepts the token as a query parameter.
    status, _ = await raw(http, api, "GET", f"/me?access_token={TOKEN}", token="")
    assert status == 401
    assert [call.status for call in api.calls] == [401, 401, 401, 401]


async def test_unknown_path_and_wrong_method(api: FakeMaxAPI, http: aiohttp.ClientSession) -> None:
    assert (await raw(http, api, "GET", "/photos"))[0] == 404
    status, body = await raw(http, api, "PATCH", "/answers")
    assert (status, body["code"]) == (405, "method.not.allowed")


# -- sending -----------------------------------------------------------------------------------


async def test_send_with_keyboard_returns_max_message_and_records_dialog(
    bot: Bot, api: FakeMaxAPI
) -> None:
    sent = await bot.send_message(
        user_id=USER,
        text="<b>Заявка №5</b> &amp; <i>ok</i>",
        attachments=[keyboard("Да", "Нет")],
        format=TextFormat.HTML,
    )

    assert sent is not None
    message = sent.message
    chat_id = api.chat_id_of(USER)
    assert chat_id != USER
    assert (message.recipient.chat_id, message.recipient.user_id) == (chat_id, USER)
    assert message.sender is not None
    assert (message.sender.user_id, message.sender.is_bot) == (BOT_ID, True)
    assert message.body is not None
    assert message.body.mid == f"mid.{chat_id:016x}{message.body.seq:016x}"
    assert message.body.text == "Заявка №5 & ok"
    assert [(m.type, m.from_, m.length) for m in message.body.markup or []] == [
        ("strong", 0, 9),
        ("emphasized", 12, 2),
    ]
    [attachment] = message.body.attachments or []
    assert attachment.type == "inline_keyboard"

    stored = api.last_bot_message(USER)
    assert (stored.mid, stored.format, stored.source) == (
        message.body.mid,
        "html",
        "<b>Заявка №5</b> &amp; <i>ok</i>",
    )
    assert stored.buttons() == [["Да", "Нет"]]
    assert stored.button("Нет") == {
        "type": "callback",
        "text": "Нет",
        "payload": "cb:Нет",
        "intent": "default",
    }
    assert stored.callback_id
    assert api.calls_of("post /messages")[0].query == {"user_id": str(USER)}


async def test_chat_id_and_user_id_reach_the_same_dialog(bot: Bot, api: FakeMaxAPI) -> None:
    api.send_text(USER, "привет")
    await bot.send_message(chat_id=api.chat_id_of(USER), text="по чату")
    await bot.send_message(user_id=USER, text="по пользователю")

    assert [(m.from_bot, m.text) for m in api.chat(USER)] == [
        (False, "привет"),
        (True, "по чату"),
        (True, "по пользователю"),
    ]
    assert api.chat(OTHER) == []
    with pytest.raises(MaxApiError) as unknown_chat:
        await bot.send_message(chat_id=555, text="?")
    assert unknown_chat.value.code == 404
    with pytest.raises(MaxApiError) as unknown_user:
        await bot.send_message(user_id=555, text="?")
    assert unknown_user.value.raw == {
        "code": "dialog.not.found",
        "message": "error.dialog.notfound",
    }


async def test_text_limit_is_4000_characters(
    bot: Bot, api: FakeMaxAPI, http: aiohttp.ClientSession
) -> None:
    params = {"user_id": USER}
    status, _ = await raw(http, api, "POST", "/messages", params=params, json={"text": "я" * 4000})
    assert status == 200
    status, body = await raw(
        http, api, "POST", "/messages", params=params, json={"text": "я" * 4001}
    )
    assert (status, body["code"]) == (400, "proto.payload")
    # maxapi itself refuses 4,000 (it checks `len(text) < 4000`) before sending anything.
    with pytest.raises(ValueError, match="4000"):
        await bot.send_message(user_id=USER, text="я" * 4000)


async def test_formats_and_empty_messages(api: FakeMaxAPI, http: aiohttp.ClientSession) -> None:
    params = {"user_id": USER}
    markdown = {"text": "**жирный**", "format": "markdown"}
    assert (await raw(http, api, "POST", "/messages", params=params, json=markdown))[0] == 200
    assert api.last_bot_message(USER).text == "**жирный**"  # kept verbatim (see the double)
    for body in ({"text": "x", "format": "bbcode"}, {"text": ""}, {}):
        status, error = await raw(http, api, "POST", "/messages", params=params, json=body)
        assert (status, error["code"]) == (400, "proto.payload"), body
    assert len(api.chat(USER)) == 1


def test_html_parsing_counts_utf16_and_strips_unknown_tags() -> None:
    text, markup = parse_max_html('😀 <b>жир</b> <span>x</span> <a href="https://x.ru">ссылка</a>')

    assert text == "😀 жир x ссылка"
    assert markup == [
        {"type": "strong", "from": 3, "length": 3},
        {"type": "link", "from": 9, "length": 6, "url": "https://x.ru"},
    ]


@pytest.mark.parametrize(
    ("attachment", "error"),
    [
        (rows(8), "more than 7 buttons in row 1"),
        (rows(3, button=lambda n: LinkButton(text=f"l{n}", url="https://x.ru")), None),
        (rows(4, button=lambda n: LinkButton(text=f"l{n}", url="https://x.ru")), "more than 3"),
        (rows(*[1] * 31), "more than 30 rows"),
        (rows(*[7] * 30), None),  # 210 buttons, the most MAX allows
        (rows(1, button=lambda n: CallbackButton(text="x")), "Field 'payload' cannot be null"),
        (rows(1, button=lambda n: OpenAppButton(text="app")), "Field 'webApp' cannot be null"),
        (rows(1, button=lambda n: CallbackButton(text="x", payload="я" * 1025)), "payload"),
        (rows(1, button=lambda n: CallbackButton(text="я" * 129, payload="p")), "text must be"),
    ],
)
async def test_keyboard_limits(bot: Bot, attachment: AttachmentButton, error: str | None) -> None:
    if error is None:
        await bot.send_message(user_id=USER, text="ok", attachments=[attachment])
        return
    with pytest.raises(MaxApiError) as refused:
        await bot.send_message(user_id=USER, text="x", attachments=[attachment])
    assert refused.value.code == 400
    assert isinstance(refused.value.raw, dict)
    assert refused.value.raw["code"] == "proto.payload"
    assert error in refused.value.raw["message"]


async def test_wide_buttons_share_a_row_of_three(bot: Bot, api: FakeMaxAPI) -> None:
    builder = InlineKeyboardBuilder()
    builder.row(
        CallbackButton(text="Да", payload="yes"),
        OpenAppButton(text="Войти", web_app="dpo_test_bot", payload="signin"),
        RequestContactButton(text="Телефон"),
    )
    await bot.send_message(user_id=USER, text="x", attachments=[builder.as_markup()])
    builder.add(CallbackButton(text="Нет", payload="no"))

    with pytest.raises(MaxApiError, match="more than 3 buttons in row 1"):
        await bot.send_message(user_id=USER, text="x", attachments=[builder.as_markup()])
    assert api.last_bot_message(USER).button("Войти") == {
        "type": "open_app",
        "text": "Войти",
        "web_app": "dpo_test_bot",
        "payload": "signin",
    }


# -- editing and deleting ----------------------------------------------------------------------


async def test_edit_attachments_left_out_keep_empty_list_removes(
    bot: Bot, api: FakeMaxAPI, http: aiohttp.ClientSession
) -> None:
    api.set_rate_limits(None)  # four edits in a second of the frozen clock
    mid = await send(bot, user_id=USER, text="Заявка", attachments=[keyboard("Да")])
    first_callback_id = api.message(mid).callback_id

    status, answer = await raw(
        http, api, "PUT", "/messages", params={"message_id": mid}, json={"text": "Заявка 2"}
    )
    assert (status, answer) == (200, {"success": True})
    assert (api.message(mid).text, api.message(mid).buttons()) == ("Заявка 2", [["Да"]])

    assert api.message(mid).callback_id == first_callback_id
    await bot.edit_message(mid, text="Заявка 3", attachments=[keyboard("Да", "Нет")])
    assert api.message(mid).buttons() == [["Да", "Нет"]]
    second_callback_id = api.message(mid).callback_id
    assert second_callback_id not in (None, first_callback_id)  # a new keyboard, a new id
    await bot.edit_message(mid, text="Заявка 4", attachments=[keyboard("Да", "Нет")])
    assert api.message(mid).callback_id == second_callback_id

    # maxapi sends `attachments: []` when none are given: MAX then removes the keyboard.
    await bot.edit_message(mid, text="<i>Одобрено</i>", format=TextFormat.HTML)
    edited = api.message(mid)
    assert (edited.text, edited.buttons(), edited.edited) == ("Одобрено", [], True)
    assert api.calls_of("PUT /messages")[-1].body == {
        "attachments": [],
        "text": "<i>Одобрено</i>",
        "format": "html",
    }


async def test_edit_refusals(
    bot: Bot, api: FakeMaxAPI, clock: ManualClock, http: aiohttp.ClientSession
) -> None:
    plain = await send(bot, user_id=USER, text="без кнопок")
    with_keyboard = await send(bot, user_id=USER, text="с кнопками", attachments=[keyboard("Да")])
    users = api.send_text(USER, "моё")["message"]["body"]["mid"]

    with pytest.raises(MaxApiError) as missing:
        await bot.edit_message("mid.0000", text="x")
    assert missing.value.code == 404
    with pytest.raises(MaxApiError) as foreign:
        await bot.edit_message(users, text="x")
    assert foreign.value.code == 403

    clock.advance(days=7, seconds=1)
    with pytest.raises(MaxApiError, match="older than 7 days"):
        await bot.edit_message(plain, text="поздно")
    keep = {"text": "можно"}  # a message with a keyboard is editable at any age
    params = {"message_id": with_keyboard}
    assert (await raw(http, api, "PUT", "/messages", params=params, json=keep))[0] == 200


async def test_delete_message(bot: Bot, api: FakeMaxAPI) -> None:
    mid = await send(bot, user_id=USER, text="удалить")

    assert (await bot.delete_message(mid)).success
    assert api.chat(USER) == []
    assert api.message(mid).deleted
    with pytest.raises(MaxApiError) as again:
        await bot.delete_message(mid)
    assert again.value.code == 404


async def test_get_chat_and_messages(bot: Bot, api: FakeMaxAPI) -> None:
    api.send_text(USER, "один")
    sent = await send(bot, user_id=USER, text="два")

    chat = await bot.get_chat_by_id(api.chat_id_of(USER))
    assert chat.dialog_with_user is not None
    assert (chat.type, chat.dialog_with_user.user_id) == ("dialog", USER)
    listed = await bot.get_messages(chat_id=api.chat_id_of(USER))
    assert [m.body.text for m in listed.messages if m.body] == ["два", "один"]
    single = await bot.get_message(sent)
    assert single.body is not None
    assert single.body.text == "два"


# -- users: presses and answers ----------------------------------------------------------------


async def test_press_answer_with_a_new_message_and_a_notification(
    bot: Bot, api: FakeMaxAPI
) -> None:
    await bot.send_message(user_id=USER, text="старое", attachments=[keyboard("Да")])
    newest = await send(bot, user_id=USER, text="Одобрить?", attachments=[keyboard("Да", "Нет")])
    api.press(USER, "Да")

    [raw_update], _ = await updates(bot)
    event = UpdateUnionAdapter.validate_python(raw_update)
    assert isinstance(event, MessageCallback)
    assert event.callback.payload == "cb:Да"
    assert event.callback.user.user_id == USER
    assert event.message is not None
    assert event.message.body is not None
    assert event.message.body.mid == newest
    assert (
        raw_update["message"]["body"]["attachments"][0]["callback_id"] == event.callback.callback_id
    )
    assert api.unanswered_callbacks() == [event.callback.callback_id]

    answer = MessageForCallback(
        text="<b>Одобрено</b>", attachments=[keyboard("Отменить")], format=TextFormat.HTML
    )
    sent = await bot.send_callback(
        event.callback.callback_id, message=answer, notification="Готово"
    )
    assert sent.success
    edited = api.message(newest)
    assert (edited.text, edited.buttons()) == ("Одобрено", [["Отменить"]])
    assert api.notifications(USER) == ["Готово"]
    assert api.unanswered_callbacks() == []
    assert api.callback_answers(event.callback.callback_id)[0]["notification"] == "Готово"

    with pytest.raises(MaxApiError) as old:
        await bot.send_callback(event.callback.callback_id, notification="ещё раз")
    assert old.value.code == 404


async def test_empty_answer_is_400(bot: Bot, api: FakeMaxAPI, http: aiohttp.ClientSession) -> None:
    await bot.send_message(user_id=USER, text="?", attachments=[keyboard("Да")])
    callback_id = api.press(USER, "Да")["callback"]["callback_id"]
    params = {"callback_id": callback_id}

    for body in ({}, {"notification": ""}, {"message": {}}):
        status, error = await raw(http, api, "POST", "/answers", params=params, json=body)
        assert (status, error["code"]) == (400, "proto.payload"), body
    assert (
        await raw(
            http,
            api,
            "POST",
            "/answers",
            params={"callback_id": "forged"},
            json={"notification": "x"},
        )
    )[0] == 404
    assert (await bot.send_callback(callback_id, notification="ок")).success


async def test_presses_of_one_keyboard_share_its_callback_id(bot: Bot, api: FakeMaxAPI) -> None:
    await bot.send_message(user_id=USER, text="?", attachments=[keyboard("Да", "Нет")])
    first = api.press(USER, "Да")["callback"]
    second = api.press(USER, "Нет")["callback"]

    assert first["callback_id"] == second["callback_id"]
    assert first["timestamp"] < second["timestamp"]  # the press's own identity beside the id
    assert (first["payload"], second["payload"]) == ("cb:Да", "cb:Нет")
    api.take_updates()
    assert api.unanswered_callbacks() == [first["callback_id"]] * 2
    await bot.send_callback(first["callback_id"], notification="1")
    await bot.send_callback(first["callback_id"], notification="2")
    with pytest.raises(MaxApiError):
        await bot.send_callback(first["callback_id"], notification="3")


async def test_press_finds_buttons_by_label(bot: Bot, api: FakeMaxAPI) -> None:
    builder = InlineKeyboardBuilder()
    builder.row(
        CallbackButton(text="Да", payload="yes"), LinkButton(text="Сайт", url="https://x.ru")
    )
    builder.row(MessageButton(text="Помощь"))
    await bot.send_message(user_id=USER, text="?", attachments=[builder.as_markup()])

    with pytest.raises(LookupError, match=r"available: \['Да', 'Сайт', 'Помощь'\]"):
        api.press(USER, "Может быть")
    with pytest.raises(LookupError, match="does not reach the bot"):
        api.press(USER, "Сайт")
    sent_as_text = api.press(USER, "Помощь")  # a message button writes its text as the user
    assert sent_as_text["update_type"] == "message_created"
    assert sent_as_text["message"]["body"]["text"] == "Помощь"
    forged = api.press_payload(USER, "admin:1", api.last_bot_message(USER).mid)
    assert forged["callback"]["payload"] == "admin:1"


# -- users: start, stop, dialog removal --------------------------------------------------------


async def test_start_with_a_deep_link_payload(bot: Bot, api: FakeMaxAPI) -> None:
    api.start_bot(USER, payload="t7k3f9zqm")
    api.start_bot(OTHER, payload="x" * 129)  # MAX leaves out payloads over 128 characters

    started, _ = await updates(bot)
    events = [UpdateUnionAdapter.validate_python(update) for update in started]
    assert all(isinstance(event, BotStarted) for event in events)
    assert [(e.chat_id, e.user.user_id, e.payload) for e in events] == [  # type: ignore[union-attr]
        (api.chat_id_of(USER), USER, "t7k3f9zqm"),
        (api.chat_id_of(OTHER), OTHER, None),
    ]
    assert started[0]["user_id"] == USER


async def test_stopped_bot_refuses_sends_until_the_user_starts_it_again(
    bot: Bot, api: FakeMaxAPI
) -> None:
    sent = await send(bot, user_id=USER, text="до")
    stopped = api.stop_bot(USER)

    assert stopped is not None
    assert stopped["update_type"] == "bot_stopped"
    assert api.stop_bot(USER) is None
    with pytest.raises(MaxApiError) as refused:
        await bot.send_message(user_id=USER, text="после")
    assert (refused.value.code, refused.value.raw) == (
        403,
        {"code": "chat.denied", "message": "error.dialog.suspended"},
    )
    with pytest.raises(MaxApiError):
        await bot.edit_message(sent, text="правка")

    api.send_text(USER, "я вернулся")
    kinds = [update["update_type"] for update in api.pending_updates()]
    assert kinds == ["bot_stopped", "bot_started", "message_created"]
    await bot.send_message(user_id=USER, text="снова")


async def test_removed_dialog_loses_its_messages(bot: Bot, api: FakeMaxAPI) -> None:
    await bot.send_message(user_id=USER, text="было")
    removed = api.remove_dialog(USER)

    assert removed is not None
    assert removed["update_type"] == "dialog_removed"
    assert api.chat(USER) == []
    with pytest.raises(MaxApiError) as refused:
        await bot.send_message(user_id=USER, text="есть кто?")
    assert refused.value.code == 404
    api.start_bot(USER)
    await bot.send_message(user_id=USER, text="снова")


async def test_every_update_parses_into_maxapi_types(bot: Bot, api: FakeMaxAPI) -> None:
    await bot.send_message(user_id=USER, text="?", attachments=[keyboard("Да")])
    api.start_bot(USER, payload="p")
    api.send_text(USER, "текст")
    api.press(USER, "Да")
    api.stop_bot(USER)
    api.remove_dialog(OTHER)

    parsed = [UpdateUnionAdapter.validate_python(update) for update in api.take_updates()]
    assert [event.update_type for event in parsed] == [
        UpdateType.BOT_STARTED,
        UpdateType.MESSAGE_CREATED,
        UpdateType.MESSAGE_CALLBACK,
        UpdateType.BOT_STOPPED,
        UpdateType.DIALOG_REMOVED,
    ]
    created = parsed[1]
    assert isinstance(created, MessageCreated)
    assert created.message.sender is not None
    assert created.message.sender.full_name == "Иван Петров"
    assert created.message.recipient.user_id == BOT_ID
    assert created.user_locale == "ru"


# -- long polling with markers -----------------------------------------------------------------


async def test_an_update_comes_again_until_a_later_marker_confirms_it(
    bot: Bot, api: FakeMaxAPI
) -> None:
    api.send_text(USER, "первое")
    api.send_text(USER, "второе")

    [first], marker = await updates(bot, limit=1)
    again, same_marker = await updates(bot, limit=1)  # no marker: nothing was confirmed
    assert (again, same_marker) == ([first], marker)
    [second], next_marker = await updates(bot, marker=marker)
    assert [first["message"]["body"]["text"], second["message"]["body"]["text"]] == [
        "первое",
        "второе",
    ]
    assert len(api.pending_updates()) == 1
    assert await updates(bot, marker=next_marker) == ([], next_marker)
    assert api.pending_updates() == []
    assert await updates(bot, marker=marker) == ([], next_marker)  # markers never go back


async def test_with_the_switch_a_poll_without_a_marker_gets_only_the_latest_update(
    bot: Bot, api: FakeMaxAPI
) -> None:
    api.unmarked_poll_gives_last_only = True  # dev.max.ru's reading
    for text in ("первое", "второе", "третье"):
        api.send_text(USER, text)
    [latest], marker = await updates(bot)
    assert latest["message"]["body"]["text"] == "третье"
    assert len(api.pending_updates()) == 1  # the earlier ones are gone
    api.send_text(USER, "четвёртое")
    [fourth], _ = await updates(bot, marker=marker)  # with a marker: as before
    assert fourth["message"]["body"]["text"] == "четвёртое"


async def test_long_poll_returns_as_soon_as_a_user_writes(bot: Bot, api: FakeMaxAPI) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.02)
    assert not poll.done()

    api.send_text(USER, "/start")
    answer = await asyncio.wait_for(poll, 2)

    assert [u["message"]["body"]["text"] for u in answer["updates"]] == ["/start"]


async def test_types_filter_skips_and_confirms_other_updates(bot: Bot, api: FakeMaxAPI) -> None:
    await bot.send_message(user_id=USER, text="?", attachments=[keyboard("Да")])
    api.send_text(USER, "текст")
    api.press(USER, "Да")

    [press], marker = await updates(bot, types=[UpdateType.MESSAGE_CALLBACK])
    assert press["update_type"] == "message_callback"
    assert await updates(bot, marker=marker) == ([], marker)


def confirmed_marker(calls: list[Call]) -> int | None:
    """The marker of the first batch that had updates, once a later poll has passed it."""
    batches = [c for c in calls if c.endpoint == "GET /updates" and c.response.get("updates")]
    if not batches:
        return None
    marker = batches[0].response["marker"]
    later = calls[calls.index(batches[0]) + 1 :]
    passed = any(
        c.endpoint == "GET /updates" and c.query.get("marker") == str(marker) for c in later
    )
    return marker if passed else None


async def run_polling_until_confirmed(
    dispatcher: Dispatcher, bot: Bot, api: FakeMaxAPI
) -> list[Call]:
    """Run maxapi's own polling until it has confirmed the first batch; the calls it made."""
    api.poll_timeout = 0.05  # maxapi polls without a timeout: MAX's 30 s default would hold
    seen: list[Call] = []
    confirmed = asyncio.Event()

    def record(call: Call) -> None:
        seen.append(call)
        if confirmed_marker(seen) is not None:
            confirmed.set()

    api.observe(record)
    polling = asyncio.create_task(dispatcher.start_polling(bot))
    try:
        await asyncio.wait_for(confirmed.wait(), 5)
    finally:
        await dispatcher.stop_polling()
        await polling
    return seen


async def test_maxapi_polling_handles_then_confirms_the_batch(bot: Bot, api: FakeMaxAPI) -> None:
    dispatcher = Dispatcher()
    pending_while_handling: list[int] = []

    @dispatcher.message_created()
    async def echo(event: MessageCreated) -> None:
        assert event.message.body is not None
        pending_while_handling.append(len(api.pending_updates()))
        await event.message.answer(f"Эхо: {event.message.body.text}")

    api.send_text(USER, "привет")
    seen = await run_polling_until_confirmed(dispatcher, bot, api)

    assert api.last_bot_message(USER).text == "Эхо: привет"
    assert pending_while_handling == [1]  # not confirmed before the handler ran
    assert api.pending_updates() == []
    assert "GET /chats/{chatId}" in [c.endpoint for c in seen]  # maxapi's auto_requests


async def test_maxapi_polling_confirms_a_batch_whose_handler_failed(
    bot: Bot, api: FakeMaxAPI
) -> None:
    dispatcher = Dispatcher()
    failures: list[str] = []

    @dispatcher.message_created()
    async def broken(event: MessageCreated) -> None:
        failures.append("failed")
        raise RuntimeError("the database is down")

    api.send_text(USER, "потеряется")
    await run_polling_until_confirmed(dispatcher, bot, api)

    assert failures == ["failed"]  # handled once, failed, and confirmed all the same
    assert api.pending_updates() == []


# -- rate limits and faults --------------------------------------------------------------------


async def test_two_sends_and_edits_a_second_per_dialog(
    bot: Bot, api: FakeMaxAPI, clock: ManualClock
) -> None:
    first = await send(bot, user_id=USER, text="1")
    await bot.send_message(user_id=USER, text="2")
    with pytest.raises(MaxApiError) as limited:
        await bot.send_message(user_id=USER, text="3")
    assert (limited.value.code, limited.value.raw) == (
        429,
        {"code": "too.many.requests", "message": "Too many requests"},
    )
    await bot.send_message(user_id=OTHER, text="другой диалог")

    clock.advance(seconds=1)
    await bot.edit_message(first, text="1'")
    await bot.send_message(user_id=USER, text="3")
    with pytest.raises(MaxApiError):
        await bot.edit_message(first, text="1''")
    assert api.too_many_requests == 2
    assert [m.text for m in api.chat(USER)] == ["1'", "2", "3"]


async def test_answers_have_their_own_two_a_second(
    bot: Bot, api: FakeMaxAPI, clock: ManualClock
) -> None:
    await bot.send_message(user_id=USER, text="?", attachments=[keyboard("Да")])
    await bot.send_message(user_id=USER, text="??")
    ids = [api.press(USER, "Да")["callback"]["callback_id"] for _ in range(3)]

    await bot.send_callback(ids[0], notification="1")
    await bot.send_callback(ids[1], notification="2")
    with pytest.raises(MaxApiError) as limited:
        await bot.send_callback(ids[2], notification="3")
    assert limited.value.code == 429
    clock.advance(seconds=1)
    await bot.send_callback(ids[2], notification="3")


async def test_overall_limit_and_no_limits(bot: Bot, api: FakeMaxAPI, clock: ManualClock) -> None:
    api.set_rate_limits(None, answers_per_chat_per_second=None, overall_per_second=3)
    for text in "123":
        await bot.send_message(user_id=USER, text=text)
    with pytest.raises(MaxApiError):
        await bot.get_me()
    assert (await bot.get_updates(timeout=0))["updates"] == []  # long polls don't count

    api.set_rate_limits(None, answers_per_chat_per_second=None)
    for text in "45678":
        await bot.send_message(user_id=USER, text=text)
    assert len(api.chat(USER)) == 8


async def test_injected_faults(
    make_bot: Callable[..., Bot], api: FakeMaxAPI, http: aiohttp.ClientSession
) -> None:
    retrying = make_bot(max_retries=3, retry_backoff_factor=0.001)
    api.fail_next("POST /messages", status=502, times=2)
    await retrying.send_message(user_id=USER, text="после двух 502")  # maxapi retried itself
    api.fail_next("POST /messages", status=500)
    with pytest.raises(MaxApiError) as server_error:
        await retrying.send_message(user_id=USER, text="500 не повторяется")
    assert server_error.value.code == 500

    chat_id = api.chat_id_of(OTHER)
    api.fail_next("post /messages", status=403, code="chat.denied", message="x", chat_id=chat_id)
    await retrying.send_message(user_id=USER, text="не тот диалог")
    with pytest.raises(MaxApiError) as denied:
        await retrying.send_message(chat_id=chat_id, text="в этот")
    assert denied.value.raw == {"code": "chat.denied", "message": "x"}

    api.fail_next("POST /messages", status=429, retry_after=3)
    async with http.post(
        f"{api.url}/messages?user_id={USER}", json={"text": "x"}, headers={"Authorization": TOKEN}
    ) as response:
        assert (response.status, response.headers["Retry-After"]) == (429, "3")
    assert [c.status for c in api.calls_of("POST /messages")] == [502, 502, 200, 500, 200, 403, 429]
    assert [m.text for m in api.chat(USER)] == ["после двух 502", "не тот диалог"]


async def test_a_timed_out_send_was_sent_nevertheless(
    make_bot: Callable[..., Bot], api: FakeMaxAPI
) -> None:
    bot = make_bot(timeout=1)  # ample for the request to arrive even on a loaded machine
    api.timeout_next("POST /messages", seconds=5)

    with pytest.raises(TimeoutError):  # maxapi lets the plain TimeoutError through
        await bot.send_message(user_id=USER, text="дубль?")
    assert [m.text for m in api.chat(USER)] == ["дубль?"]
    assert api.calls_of("POST /messages")[0].delay == 5


async def test_calls_record_the_base_url_they_came_through(
    make_bot: Callable[..., Bot], api: FakeMaxAPI
) -> None:
    for base in (api.url, api.url_for("replica-1")):
        await make_bot(base=base).send_message(user_id=USER, text="привет")

    assert [(c.endpoint, c.via) for c in api.calls] == [
        ("POST /messages", None),
        ("POST /messages", "replica-1"),
    ]
    with pytest.raises(ValueError, match="not a usable name"):
        api.url_for("messages")


# -- webhooks ----------------------------------------------------------------------------------

# maxapi warns about the http:// webhook URLs these tests use on 127.0.0.1.
http_webhook = pytest.mark.filterwarnings("ignore:URL вебхука не использует HTTPS")


class Receiver:
    """A webhook endpoint on 127.0.0.1 answering with the statuses it is given."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.received: list[tuple[str | None, dict[str, Any]]] = []
        self.runner: web.AppRunner | None = None

    async def __aenter__(self) -> str:
        async def hook(request: web.Request) -> web.Response:
            self.received.append((request.headers.get(SECRET_HEADER), await request.json()))
            return web.json_response({}, status=self.statuses.pop(0) if self.statuses else 200)

        app = web.Application()
        app.router.add_post("/hook", hook)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        return f"http://127.0.0.1:{self.runner.addresses[0][1]}/hook"

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


@http_webhook
async def test_webhook_redelivers_until_it_gets_a_200(bot: Bot, api: FakeMaxAPI) -> None:
    receiver = Receiver(500, 204)
    async with receiver as url:
        assert (await bot.subscribe_webhook(url, secret="s3cr3t-value")).success
        api.send_text(USER, "раз")
        api.send_text(USER, "два")

        assert await api.deliver_webhook() == [500]
        assert len(api.pending_updates()) == 2
        assert await api.deliver_webhook() == [204]  # MAX counts only a 200 as delivered
        assert await api.deliver_webhook() == [200, 200]

    assert api.pending_updates() == []
    assert {secret for secret, _ in receiver.received} == {"s3cr3t-value"}
    texts = [update["message"]["body"]["text"] for _, update in receiver.received]
    assert texts == ["раз", "раз", "раз", "два"]
    assert api.webhook_error is not None
    assert api.webhook_error[1] == 204


@http_webhook
async def test_webhook_through_maxapis_own_server_checks_the_secret(
    bot: Bot, api: FakeMaxAPI
) -> None:
    dispatcher = Dispatcher()
    received: list[str | None] = []

    @dispatcher.message_created()
    async def got(event: MessageCreated) -> None:
        assert event.message.body is not None
        received.append(event.message.body.text)

    webhook = AiohttpMaxWebhook(dp=dispatcher, bot=bot, secret="right-secret")
    runner = web.AppRunner(webhook.create_app(path="/max"))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/max"
        await bot.subscribe_webhook(url, secret="wrong-secret")
        api.send_text(USER, "привет")
        assert await api.deliver_webhook() == [403]
        await bot.subscribe_webhook(url, secret="right-secret")  # same URL: settings replaced
        assert await api.deliver_webhook() == [200]
    finally:
        await runner.cleanup()
    assert received == ["привет"]
    assert len((await bot.get_subscriptions()).subscriptions) == 1


async def test_subscription_excludes_polling_and_validates(
    bot: Bot, api: FakeMaxAPI, http: aiohttp.ClientSession
) -> None:
    api.send_text(USER, "ждёт")
    await bot.subscribe_webhook("https://bot.example.org/max", secret="secret-1")

    assert await updates(bot) == ([], 1)  # polling gets nothing while subscribed
    [subscription] = (await bot.get_subscriptions()).subscriptions
    assert subscription.url == "https://bot.example.org/max"
    await bot.delete_webhook()
    assert (await bot.get_subscriptions()).subscriptions == []
    assert len((await updates(bot))[0]) == 1

    for body in (
        {"url": "http://bot.example.org/max"},  # MAX delivers over HTTPS only
        {"url": "https://bot.example.org/max", "secret": "sh"},
        {"url": "https://bot.example.org/max", "secret": "not allowed!"},
        {"url": "ftp://bot"},
    ):
        status, error = await raw(http, api, "POST", "/subscriptions", json=body)
        assert (status, error["code"]) == (400, "proto.payload"), body


@http_webhook
async def test_webhook_is_dropped_after_8_hours_of_failures(
    bot: Bot, api: FakeMaxAPI, clock: ManualClock
) -> None:
    async with Receiver(503, 503) as url:
        await bot.subscribe_webhook(url)
        api.send_text(USER, "недоставлено")
        assert await api.deliver_webhook() == [503]
        clock.advance(hours=8, seconds=1)
        assert await api.deliver_webhook() == [503]

    assert api.subscriptions == []
    assert api.dropped_subscriptions == [url]


# -- uploads -----------------------------------------------------------------------------------


async def test_maxapi_uploads_a_file_and_sends_it_attached(
    bot: Bot, api: FakeMaxAPI, http: aiohttp.ClientSession
) -> None:
    """maxapi's own upload path (POST /uploads, the multipart `data` to the URL, the token from
    the upload's answer) gives a message whose `file` attachment names and sizes the file."""
    content = b"PK\x03\x04 a workbook"
    media = InputMediaBuffer(content, "list.xlsx", type=UploadType.FILE)
    mid = await send(
        bot,
        chat_id=api.chat_id_of(USER),
        attachments=[media],
        text="Список",
        sleep_after_input_media=False,
    )
    [attachment] = api.message(mid).attachments
    assert (attachment["type"], attachment["size"]) == ("file", len(content))
    assert attachment["filename"].startswith("list.xlsx")  # maxapi may add an extension
    assert api.file(mid).content == content
    async with http.get(attachment["payload"]["url"]) as response:  # the attachment's URL
        assert await response.read() == content
    assert [c.endpoint for c in api.calls][:2] == ["POST /uploads", "POST /upload/{id}"]


async def test_an_image_token_comes_with_the_upload_a_video_token_with_the_url(
    bot: Bot, api: FakeMaxAPI, http: aiohttp.ClientSession
) -> None:
    image = InputMediaBuffer(b"\x89PNG\r\n\x1a\n image", "a.png", type=UploadType.IMAGE)
    video = InputMediaBuffer(b"\x00\x00\x00\x18ftypmp42 video", "v.mp4", type=UploadType.VIDEO)
    for media in (image, video):
        mid = await send(
            bot, chat_id=api.chat_id_of(USER), attachments=[media], sleep_after_input_media=False
        )
        assert [a["type"] for a in api.message(mid).attachments] == [media.type.value]
    status, endpoint = await raw(http, api, "POST", "/uploads?type=video")
    assert status == 200
    assert endpoint["token"]  # video and audio: the token comes here
    _, image_endpoint = await raw(http, api, "POST", "/uploads?type=image")
    assert "token" not in image_endpoint
    form = aiohttp.FormData()
    form.add_field("data", b"x", filename="v.mp4")
    async with http.post(endpoint["url"], data=form) as response:
        assert (response.status, await response.text()) == (200, "<retval>1</retval>")


async def test_uploads_refused_as_max_refuses_them(
    api: FakeMaxAPI, http: aiohttp.ClientSession
) -> None:
    chat = api.chat_id_of(USER)
    assert (await raw(http, api, "POST", "/uploads"))[0] == 400  # no type
    assert (await raw(http, api, "POST", "/uploads?type=sticker"))[0] == 400
    _, endpoint = await raw(http, api, "POST", "/uploads?type=file")
    async with http.post(endpoint["url"], data=b"raw bytes") as response:
        assert response.status == 400  # multipart only (MAX also takes a resumable upload)
    form = aiohttp.FormData()
    form.add_field("data", b"PK", filename="a.xlsx")
    async with http.post(endpoint["url"], data=form) as response:
        token = (await response.json())["token"]
    form = aiohttp.FormData()
    form.add_field("data", b"PK", filename="b.xlsx")
    async with http.post(endpoint["url"], data=form) as response:
        assert response.status == 400  # one file per upload URL
    attached = {"type": "file", "payload": {"token": token}}
    keyboard = {
        "type": "inline_keyboard",
        "payload": {"buttons": [[{"type": "callback", "text": "a", "payload": "a"}]]},
    }
    for attachments in (
        [attached, keyboard],  # a file is a message's only attachment
        [{"type": "file", "payload": {"token": "forged"}}],
        [{"type": "image", "payload": {"token": token}}],  # a file's token is not an image's
    ):
        status, error = await raw(
            http, api, "POST", f"/messages?chat_id={chat}", json={"attachments": attachments}
        )
        assert (status, error["code"]) == (400, "proto.payload")
    status, _ = await raw(
        http, api, "POST", f"/messages?chat_id={chat}", json={"attachments": [attached]}
    )
    assert status == 200
