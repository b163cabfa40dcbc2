"""The Telegram Bot API test double, driven through a real aiogram Bot over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiogram import Bot, Dispatcher, F
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.filters import Command, CommandObject
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
)
from aiogram.types import Message as TgMessage
from aiohttp import web

from tests.fakes.bot_api import NOT_MODIFIED, FakeBotAPI, parse_html

TOKEN = "123456:TEST"
USER = 1001
OTHER = 1002


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class QuickCloseSession(AiohttpSession):
    """aiogram sleeps 250 ms on close to let SSL connections finish; plain HTTP needs no wait."""

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


def keyboard(*labels: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=label, callback_data=f"cb:{label}") for label in labels]
        ]
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest_asyncio.fixture
async def api(clock: FakeClock) -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI(TOKEN, clock=clock) as fake:
        fake.add_user(USER, "Иван", username="ivan")
        fake.add_user(OTHER, "Мария")
        yield fake


@pytest_asyncio.fixture
async def make_bot(api: FakeBotAPI) -> AsyncIterator[Callable[..., Bot]]:
    sessions: list[AiohttpSession] = []

    def make(*, timeout: float = 5.0, token: str = TOKEN) -> Bot:
        session = QuickCloseSession(api=TelegramAPIServer.from_base(api.url), timeout=timeout)
        sessions.append(session)
        return Bot(token, session=session, default=DefaultBotProperties(parse_mode="HTML"))

    yield make
    for session in sessions:
        await session.close()


# -- HTML parse mode ---------------------------------------------------------------------------


def test_parse_html_strips_tags_and_counts_utf16_offsets() -> None:
    text, entities = parse_html(
        '😀 <b>жирный</b> &lt;tag&gt; &amp; <a href="https://x.io">link</a>'
    )

    assert text == "😀 жирный <tag> & link"
    assert entities == [
        {"offset": 3, "length": 6, "type": "bold"},
        {"offset": 18, "length": 4, "type": "text_link", "url": "https://x.io"},
    ]


def test_parse_html_character_references_and_pre_code() -> None:
    text, entities = parse_html(
        '&#x41;&#66; &nbsp; a & b <pre><code class="language-python">x = 1</code></pre>'
    )

    assert text == "AB &nbsp; a & b x = 1"
    assert entities == [{"offset": 16, "length": 5, "type": "pre", "language": "python"}]


@pytest.mark.parametrize(
    ("markup", "reason"),
    [
        ("<b>x", 'Can\'t find end tag corresponding to start tag "b"'),
        ("ok <br>", 'Unsupported start tag "br" at byte offset 3'),
        ("<b><i>x</b></i>", 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"'),
        ("x</b>", "Unexpected end tag at byte offset 1"),
        ("<span>x</span>", 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ("я <b", "Unclosed start tag at byte offset 3"),
    ],
)
def test_parse_html_rejects_invalid_markup_like_telegram(markup: str, reason: str) -> None:
    with pytest.raises(Exception, match="can't parse entities") as error:
        parse_html(markup)

    assert str(error.value) == f"Bad Request: can't parse entities: {reason}"


# -- getMe, sendMessage ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_get_me_describes_the_bot(bot: Bot, api: FakeBotAPI) -> None:
    me = await bot.get_me()

    assert (me.id, me.is_bot, me.username) == (123456, True, "dpo_test_bot")
    assert [call.status for call in api.calls_of("getme")] == [200]


@pytest.mark.asyncio
async def test_send_message_returns_telegram_message_and_records_chat(
    bot: Bot, api: FakeBotAPI
) -> None:
    html = "<b>Заявка №5</b> &amp; <i>ok</i>"
    sent = await bot.send_message(USER, html, reply_markup=keyboard("Да", "Нет"))

    assert sent.text == "Заявка №5 & ok"
    assert sent.from_user is not None
    assert sent.from_user.username == "dpo_test_bot"
    assert sent.chat.id == USER
    assert sent.chat.type == "private"
    assert sent.entities is not None
    assert sent.entities[0].type == "bold"
    assert sent.reply_markup is not None
    assert sent.reply_markup.inline_keyboard[0][1].text == "Нет"

    stored = api.last_bot_message(USER)
    assert (stored.message_id, stored.text, stored.html) == (sent.message_id, sent.text, html)
    assert stored.buttons() == [["Да", "Нет"]]
    assert stored.button("Нет")["callback_data"] == "cb:Нет"
    params = api.calls_of("sendMessage")[0].params
    assert params["chat_id"] == USER
    assert params["reply_markup"]["inline_keyboard"][0][0]["text"] == "Да"


@pytest.mark.asyncio
async def test_message_ids_increase_per_chat_across_user_and_bot(bot: Bot, api: FakeBotAPI) -> None:
    api.send_text(USER, "привет")
    first = await bot.send_message(USER, "один")
    other = await bot.send_message(OTHER, "два")

    assert (first.message_id, other.message_id) == (2, 1)
    assert [(m.from_bot, m.text) for m in api.chat(USER)] == [(False, "привет"), (True, "один")]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("text", "description"),
    [
        ("<b>x</i>", "can't parse entities: Unmatched end tag"),
        ("<foo>x</foo>", 'can\'t parse entities: Unsupported start tag "foo"'),
        (" <b> </b> ", "message text is empty"),
        ("я" * 4097, "message is too long"),
    ],
)
async def test_send_message_validation_errors(bot: Bot, text: str, description: str) -> None:
    with pytest.raises(TelegramBadRequest) as error:
        await bot.send_message(USER, text)

    assert f"Bad Request: {description}" in error.value.message


@pytest.mark.asyncio
async def test_length_limit_applies_after_entity_parsing(bot: Bot) -> None:
    sent = await bot.send_message(USER, "<b>" + "я" * 4096 + "</b>")

    assert sent.text is not None
    assert len(sent.text) == 4096


@pytest.mark.asyncio
async def test_length_limits_count_utf16_code_units(bot: Bot, api: FakeBotAPI) -> None:
    """As Telegram: «📥» (beyond the BMP) counts 2, so 2048 of them fill a message and one
    more character is too long, though the text has only 2049 characters."""
    full = "📥" * 2048
    sent = await bot.send_message(USER, full)
    assert sent.text == full
    for text in ("📥" * 2048 + "я", "я" * 4095 + "📥"):
        with pytest.raises(TelegramBadRequest, match="Bad Request: message is too long"):
            await bot.send_message(USER, text)
    with pytest.raises(TelegramBadRequest, match="Bad Request: MESSAGE_TOO_LONG"):
        await bot.edit_message_text(full + "я", chat_id=USER, message_id=sent.message_id)

    await bot.send_message(USER, "?", reply_markup=keyboard("Да"))
    api.press(USER, "Да")
    [update] = await bot.get_updates()
    assert update.callback_query is not None
    query_id = update.callback_query.id
    with pytest.raises(TelegramBadRequest, match="Bad Request: MESSAGE_TOO_LONG"):
        await bot.answer_callback_query(query_id, text="👤" * 100 + "!", show_alert=True)
    assert await bot.answer_callback_query(query_id, text="👤" * 100, show_alert=True)


@pytest.mark.asyncio
async def test_callback_data_over_64_bytes_is_rejected(bot: Bot) -> None:
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="x", callback_data="я" * 33)]]
    )

    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(USER, "x", reply_markup=markup)


@pytest.mark.asyncio
async def test_unknown_chat_is_not_found(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="Bad Request: chat not found"):
        await bot.send_message(999, "hi")


# -- users: block, text, buttons ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_blocked_user_gives_403_and_my_chat_member_updates(bot: Bot, api: FakeBotAPI) -> None:
    sent = await bot.send_message(USER, "до блокировки")
    kicked = api.block(USER)

    assert kicked is not None
    assert kicked["my_chat_member"]["new_chat_member"] == {
        "user": api.bot_user,
        "status": "kicked",
        "until_date": 0,
    }
    with pytest.raises(TelegramForbiddenError, match="Forbidden: bot was blocked by the user"):
        await bot.send_message(USER, "hi")
    with pytest.raises(TelegramForbiddenError):
        await bot.edit_message_text("изменено", chat_id=USER, message_id=sent.message_id)

    api.send_text(USER, "/start")  # the "Restart" button unblocks, then sends /start
    kinds = [next(k for k in update if k != "update_id") for update in api.pending_updates()]
    assert kinds == ["my_chat_member", "my_chat_member", "message"]
    await bot.send_message(USER, "снова")


@pytest.mark.asyncio
async def test_long_poll_returns_as_soon_as_a_user_writes(bot: Bot, api: FakeBotAPI) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.02)
    assert not poll.done()

    api.send_text(USER, "/start abc_123")
    updates = await asyncio.wait_for(poll, 1)

    message = updates[0].message
    assert message is not None
    assert message.text == "/start abc_123"
    assert message.entities is not None
    assert message.entities[0].model_dump(exclude_none=True) == {
        "type": "bot_command",
        "offset": 0,
        "length": 6,
    }
    assert api.pending_updates() == []
    assert [u.update_id for u in await bot.get_updates()] == [updates[0].update_id]
    assert await bot.get_updates(offset=updates[0].update_id + 1) == []
    assert (await bot.get_webhook_info()).pending_update_count == 0


@pytest.mark.asyncio
async def test_long_poll_without_updates_waits_for_timeout(
    api: FakeBotAPI, http: aiohttp.ClientSession
) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with http.post(f"{api.url}/bot{TOKEN}/getUpdates", json={"timeout": 0.05}) as response:
        body = await response.json()

    assert body == {"ok": True, "result": []}
    assert loop.time() - started >= 0.04


@pytest.mark.asyncio
async def test_second_poller_terminates_the_first(bot: Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.05)
    await bot.get_updates()

    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
        await asyncio.wait_for(first, 1)


@pytest.mark.asyncio
async def test_press_queues_callback_query_with_the_message_and_its_markup(
    bot: Bot, api: FakeBotAPI
) -> None:
    await bot.send_message(USER, "старое", reply_markup=keyboard("Да"))
    newest = await bot.send_message(USER, "<b>Одобрить?</b>", reply_markup=keyboard("Да", "Нет"))
    api.press(USER, "Да")

    [update] = await bot.get_updates()
    query = update.callback_query
    assert query is not None
    assert query.data == "cb:Да"
    assert query.from_user.id == USER
    assert isinstance(query.message, TgMessage)
    assert query.message.message_id == newest.message_id
    assert query.message.text == "Одобрить?"
    assert query.message.reply_markup is not None
    assert query.message.reply_markup.inline_keyboard[0][1].text == "Нет"
    assert api.unanswered_callbacks() == [query.id]

    assert await bot.answer_callback_query(query.id, text="Готово")
    assert api.unanswered_callbacks() == []
    assert api.callback_answer(query.id) == {"text": "Готово"}
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query.id)


@pytest.mark.asyncio
async def test_press_unknown_label_lists_available_ones(bot: Bot, api: FakeBotAPI) -> None:
    await bot.send_message(USER, "?", reply_markup=keyboard("Да", "Нет"))

    with pytest.raises(LookupError, match=r"available: \['Да', 'Нет'\]"):
        api.press(USER, "Может быть")


@pytest.mark.asyncio
async def test_callbacks_count_as_unanswered_only_once_delivered(bot: Bot, api: FakeBotAPI) -> None:
    sent = await bot.send_message(USER, "?", reply_markup=keyboard("Да"))
    update = api.press_data(USER, "forged:1", sent.message_id)
    query_id = update["callback_query"]["id"]

    assert api.unanswered_callbacks() == []
    [taken] = api.take_updates()
    assert taken["callback_query"]["data"] == "forged:1"
    assert api.unanswered_callbacks() == [query_id]


@pytest.mark.asyncio
async def test_allowed_updates_filter_what_gets_queued(bot: Bot, api: FakeBotAPI) -> None:
    sent = await bot.send_message(USER, "?", reply_markup=keyboard("Да"))
    await bot.get_updates(allowed_updates=["message"])

    api.press(USER, "Да", message_id=sent.message_id)
    api.send_text(USER, "текст")

    assert [u.get("message", {}).get("text") for u in api.pending_updates()] == ["текст"]
    assert "callback_query" in api.dropped_updates[0]


# -- edits and deletes -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_edit_without_reply_markup_removes_the_keyboard(bot: Bot, api: FakeBotAPI) -> None:
    sent = await bot.send_message(USER, "Заявка", reply_markup=keyboard("Да"))

    edited = await bot.edit_message_text(
        "<i>Одобрено</i>", chat_id=USER, message_id=sent.message_id
    )

    assert isinstance(edited, TgMessage)
    assert edited.reply_markup is None
    assert edited.edit_date is not None
    stored = api.message(USER, sent.message_id)
    assert (stored.text, stored.html, stored.edited) == ("Одобрено", "<i>Одобрено</i>", True)
    assert stored.buttons() == []


@pytest.mark.asyncio
async def test_identical_edit_is_not_modified(bot: Bot) -> None:
    sent = await bot.send_message(USER, "<b>Заявка</b>", reply_markup=keyboard("Да"))
    markup = keyboard("Да")

    with pytest.raises(TelegramBadRequest) as error:
        await bot.edit_message_text(
            "<b>Заявка</b>", chat_id=USER, message_id=sent.message_id, reply_markup=markup
        )
    assert error.value.message == NOT_MODIFIED
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_reply_markup(
            chat_id=USER, message_id=sent.message_id, reply_markup=markup
        )
    # Same text, different formatting is a modification.
    await bot.edit_message_text(
        "Заявка", chat_id=USER, message_id=sent.message_id, reply_markup=markup
    )


@pytest.mark.asyncio
async def test_edit_and_delete_of_missing_messages(bot: Bot, api: FakeBotAPI) -> None:
    sent = await bot.send_message(USER, "удалить")

    assert await bot.delete_message(USER, sent.message_id)
    assert api.chat(USER) == []
    with pytest.raises(TelegramBadRequest, match="Bad Request: message to edit not found"):
        await bot.edit_message_text("x", chat_id=USER, message_id=sent.message_id)
    with pytest.raises(TelegramBadRequest, match="Bad Request: message to delete not found"):
        await bot.delete_message(USER, sent.message_id)


# -- rate limits and fault injection -----------------------------------------------------------


@pytest.mark.asyncio
async def test_overall_rate_limit_is_30_per_second(
    bot: Bot, api: FakeBotAPI, clock: FakeClock
) -> None:
    api.set_rate_limits(overall_per_second=30, per_chat_per_second=None)
    for i in range(30):
        await bot.send_message(USER, f"#{i}")

    clock.now += 0.2
    with pytest.raises(TelegramRetryAfter) as error:
        await bot.send_message(OTHER, "#31")
    assert error.value.retry_after == 1
    assert api.calls[-1].response == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 1",
        "parameters": {"retry_after": 1},
    }
    assert api.too_many_requests == 1

    clock.now += 0.8
    await bot.send_message(OTHER, "#31")


@pytest.mark.asyncio
async def test_per_chat_rate_limit_counts_edits_too(
    bot: Bot, api: FakeBotAPI, clock: FakeClock
) -> None:
    api.set_rate_limits()
    sent = await bot.send_message(USER, "1")
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(USER, "2")
    await bot.send_message(OTHER, "другой чат")

    clock.now += 1
    await bot.edit_message_text("1'", chat_id=USER, message_id=sent.message_id)
    with pytest.raises(TelegramRetryAfter):
        await bot.send_message(USER, "2")
    assert api.too_many_requests == 2


@pytest.mark.asyncio
async def test_retry_after_is_the_rounded_up_wait(
    bot: Bot, api: FakeBotAPI, clock: FakeClock
) -> None:
    api.set_rate_limits(overall_per_second=None, per_chat_per_second=0.25)  # 1 per 4 s
    await bot.send_message(USER, "1")
    clock.now += 0.5

    with pytest.raises(TelegramRetryAfter) as error:
        await bot.send_message(USER, "2")
    assert error.value.retry_after == 4


@pytest.mark.asyncio
async def test_injected_faults(bot: Bot, api: FakeBotAPI) -> None:
    api.fail_next("sendMessage", error_code=502)
    api.fail_next("sendMessage", error_code=429, retry_after=7)
    api.fail_next("sendMessage", error_code=400, description="Bad Request: boom", chat_id=OTHER)

    with pytest.raises(TelegramServerError, match="Bad Gateway"):
        await bot.send_message(USER, "1")
    with pytest.raises(TelegramRetryAfter) as retry:
        await bot.send_message(USER, "2")
    assert retry.value.retry_after == 7
    await bot.send_message(USER, "3")
    with pytest.raises(TelegramBadRequest, match="boom"):
        await bot.send_message(OTHER, "4")

    assert [m.text for m in api.chat(USER)] == ["3"]
    assert [call.status for call in api.calls_of("sendMessage")] == [502, 429, 200, 400]


@pytest.mark.asyncio
async def test_delayed_response_times_out_on_the_client(
    make_bot: Callable[..., Bot], api: FakeBotAPI
) -> None:
    bot = make_bot(timeout=1)  # ample for the request to arrive even on a loaded machine
    api.timeout_next("sendMessage", seconds=5)

    with pytest.raises(TelegramNetworkError, match="Request timeout error"):
        await bot.send_message(USER, "дубль?")
    assert [m.text for m in api.chat(USER)] == ["дубль?"]  # it was sent nevertheless
    assert api.calls_of("sendMessage")[0].delay == 5


# -- protocol details --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_unknown_method_and_wrong_token(
    make_bot: Callable[..., Bot], api: FakeBotAPI, http: aiohttp.ClientSession
) -> None:
    async with http.post(f"{api.url}/bot{TOKEN}/sendPhoto", data={"chat_id": USER}) as response:
        assert response.status == 404
        assert await response.json() == {"ok": False, "error_code": 404, "description": "Not Found"}

    with pytest.raises(TelegramUnauthorizedError, match="Unauthorized"):
        await make_bot(token="654321:WRONG").get_me()


@pytest.mark.asyncio
async def test_calls_record_which_base_url_they_came_through(api: FakeBotAPI) -> None:
    seen: list[tuple[str, str | None]] = []
    api.observe(lambda call: seen.append((call.method, call.via)))
    sessions = [
        QuickCloseSession(api=TelegramAPIServer.from_base(base))
        for base in (api.url, api.url_for("replica-1"), api.url_for("bot-2"))
    ]
    try:
        for session in sessions:
            await Bot(TOKEN, session=session).send_message(USER, "привет")
        with pytest.raises(TelegramUnauthorizedError):
            await Bot("654321:WRONG", session=sessions[1]).get_me()
    finally:
        for session in sessions:
            await session.close()

    assert (
        [(call.method, call.via) for call in api.calls]
        == seen
        == [
            ("sendMessage", None),
            ("sendMessage", "replica-1"),
            ("sendMessage", "bot-2"),
            ("getMe", "replica-1"),
        ]
    )
    assert [call.ok for call in api.calls] == [True, True, True, False]
    with pytest.raises(ValueError, match="not a usable name"):
        api.url_for("a/b")


@pytest.mark.asyncio
@pytest.mark.parametrize("encode_markup", [False, True])
async def test_json_bodies_with_nested_or_encoded_objects(
    api: FakeBotAPI, http: aiohttp.ClientSession, encode_markup: bool
) -> None:
    markup: Any = {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}
    if encode_markup:
        markup = '{"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}'
    body = {"chat_id": USER, "text": "123", "reply_markup": markup}

    async with http.post(f"{api.url}/bot{TOKEN}/sendMessage", json=body) as response:
        result = (await response.json())["result"]

    assert result["text"] == "123"
    assert result["reply_markup"] == {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}


@pytest.mark.asyncio
async def test_form_fields_keep_text_as_string(
    api: FakeBotAPI, http: aiohttp.ClientSession
) -> None:
    form = {"chat_id": str(USER), "text": "true"}
    async with http.post(f"{api.url}/bot{TOKEN}/sendMessage", data=form) as response:
        assert (await response.json())["result"]["text"] == "true"


@pytest.mark.asyncio
async def test_commands_by_scope_and_language(bot: Bot, api: FakeBotAPI) -> None:
    commands = [BotCommand(command="start", description="Начать")]
    scope = BotCommandScopeChat(chat_id=USER)

    assert await bot.set_my_commands(commands, scope=scope, language_code="ru")
    assert api.commands_for({"type": "chat", "chat_id": USER}, "ru") == [
        {"command": "start", "description": "Начать"}
    ]
    got = await bot.get_my_commands(scope=scope, language_code="ru")
    assert [(c.command, c.description) for c in got] == [("start", "Начать")]
    assert await bot.get_my_commands() == []
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Start", description="x")])

    assert await bot.delete_my_commands(scope=scope, language_code="ru")
    assert api.commands == {}


@pytest.mark.asyncio
async def test_webhook_blocks_polling_and_delivers_updates(bot: Bot, api: FakeBotAPI) -> None:
    received: list[tuple[str | None, dict[str, Any]]] = []

    async def webhook(request: web.Request) -> web.Response:
        update = await request.json()
        received.append((request.headers.get("X-Telegram-Bot-Api-Secret-Token"), update))
        chat_id = update["message"]["chat"]["id"]
        return web.json_response({"method": "sendMessage", "chat_id": chat_id, "text": "pong"})

    app = web.Application()
    app.router.add_post("/hook", webhook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
        assert await bot.set_webhook(url, secret_token="s3cr3t", allowed_updates=["message"])
        assert api.webhook is not None
        assert api.webhook["secret_token"] == "s3cr3t"
        with pytest.raises(TelegramConflictError, match="webhook is active"):
            await bot.get_updates()

        api.send_text(USER, "ping")
        assert (await bot.get_webhook_info()).pending_update_count == 1
        assert await api.deliver_webhook() == [200]
    finally:
        await runner.cleanup()

    assert received[0][0] == "s3cr3t"
    assert received[0][1]["message"]["text"] == "ping"
    assert api.last_bot_message(USER).text == "pong"
    info = await bot.get_webhook_info()
    assert (info.url, info.pending_update_count, info.allowed_updates) == (url, 0, ["message"])

    assert await bot.delete_webhook()
    assert await bot.get_updates() == []


@pytest.mark.asyncio
async def test_webhook_secret_token_is_validated(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="secret token contains unallowed characters"):
        await bot.set_webhook("https://example.org/hook", secret_token="not allowed!")


@pytest.mark.asyncio
async def test_dispatcher_in_process(bot: Bot, api: FakeBotAPI) -> None:
    dispatcher = Dispatcher()

    @dispatcher.message(Command("start"))
    async def start(message: TgMessage, command: CommandObject) -> None:
        await message.answer(f"Привет, <b>{command.args}</b>", reply_markup=keyboard("Одобрить"))

    @dispatcher.callback_query(F.data == "cb:Одобрить")
    async def approve(query: CallbackQuery) -> None:
        assert isinstance(query.message, TgMessage)
        await query.message.edit_text("Одобрено")
        await query.answer("OK")

    async def feed() -> None:
        for update in api.take_updates():
            await dispatcher.feed_raw_update(bot, update)

    api.send_text(USER, "/start abc_123")
    await feed()
    assert api.last_bot_message(USER).text == "Привет, abc_123"

    api.press(USER, "Одобрить")
    await feed()
    message = api.last_bot_message(USER)
    assert (message.text, message.reply_markup, message.edited) == ("Одобрено", None, True)
    assert api.unanswered_callbacks() == []
