"""The MAX front end against the MAX Bot API double: the renderer and the translation from
plain data, then the real translation, runner and executor over HTTP through maxapi's session
(an unlinked user's conversation, presses answered in one request, edits with the keyboard),
and the settings that switch it on."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from bot.conversation.effects import Document, Edit, Notice, Show
from bot.conversation.intents import MenuAction, MenuIntent, encode
from bot.conversation.runner import Runner
from bot.conversation.turn import Command, Other, Press, Reachable, Text
from bot.max.client import MaxClient, MaxError
from bot.max.effects import MaxExecutor
from bot.max.render import body, keyboard, max_text
from bot.max.updates import identity_key, translate, update_identity
from bot.process.app import conversation_eraser
from bot.screens.markup import TEXT_LIMIT, bold, escape, italic, link
from bot.screens.screen import Button, Screen, rows
from bot.settings import NO_MESSENGER, SettingsError, load_settings
from storage.states import RedisStates, StateKey
from tests.fakes.max_api import FakeMaxAPI, UploadedFile, parse_max_html

# MAX user ids apart from the Telegram ids the seeded data uses.
USER = 7_000_001
OTHER = 7_000_002


@pytest.fixture
async def max_api() -> AsyncIterator[FakeMaxAPI]:
    async with FakeMaxAPI() as api:
        api.add_user(USER, "Ирина", "Соколова", username="sokolova")
        api.add_user(OTHER, "Пётр")
        yield api


# -- the renderer, from plain data -----------------------------------------------------------


def test_shared_markup_becomes_maxs_html() -> None:
    name = 'Иванова <script> & "Ко"'
    markup = f"{bold(escape(name))}\n{italic('курс')}\n{link('https://x.ru/?a=1&b=2', 'портал')}"
    text = max_text(markup)
    assert text == (
        '<b>Иванова &lt;script&gt; &amp; "Ко"</b>\n<i>курс</i>\n'
        '<a href="https://x.ru/?a=1&amp;b=2">портал</a>'
    )
    plain, marks = parse_max_html(text)  # as the double (MAX's tag set) reads it
    assert plain == 'Иванова <script> & "Ко"\nкурс\nпортал'
    assert [mark["type"] for mark in marks] == ["strong", "emphasized", "link"]
    assert marks[2]["url"] == "https://x.ru/?a=1&b=2"


def test_tags_max_does_not_know_keep_their_text_and_nothing_grows() -> None:
    assert max_text("<blockquote>цитата</blockquote> <strong>ж</strong>") == "цитата <b>ж</b>"
    assert max_text("<b>не закрыт") == "<b>не закрыт</b>"
    long = escape('"' * 3000) + "x" * (TEXT_LIMIT - 3000 * 6)
    assert len(max_text(long)) <= len(long)


def test_buttons_become_an_inline_keyboard_attachment() -> None:
    menu = MenuIntent(MenuAction.HOME)
    screen = Screen(
        "Экран",
        (
            (Button("Меню", menu), Button("Сайт", url="https://dpo.edu-74.ru/")),
            (Button("Войти", app_url="https://bot.example.ru/link/t"),),
        ),
    )
    assert keyboard(screen) == [
        {
            "type": "inline_keyboard",
            "payload": {
                "buttons": [
                    [
                        {"type": "callback", "text": "Меню", "payload": encode(menu)},
                        {"type": "link", "text": "Сайт", "url": "https://dpo.edu-74.ru/"},
                    ],
                    [{"type": "link", "text": "Войти", "url": "https://bot.example.ru/link/t"}],
                ]
            },
        }
    ]
    # An edit or an answer always says what the keyboard is: [] removes the old one.
    assert body(Screen("Без кнопок")) == {
        "text": "Без кнопок",
        "format": "html",
        "attachments": [],
    }


# -- the translation, from the double's payloads (MAX's shapes) ------------------------------


async def test_updates_become_the_conversations_events(max_api: FakeMaxAPI) -> None:
    bot_id = max_api.bot_id
    chat_id = max_api.chat_id_of(USER)
    text = translate(max_api.send_text(USER, "Войскова"), bot_id)
    command = translate(max_api.send_text(USER, "/start app_39744"), bot_id)
    started = translate(max_api.start_bot(USER, payload="tok-en_1"), bot_id)
    plain_start = translate(max_api.start_bot(USER), bot_id)
    stopped = translate(max_api.stop_bot(USER) or {}, bot_id)
    removed = translate(max_api.remove_dialog(OTHER) or {}, bot_id)
    assert text is not None
    assert command is not None
    assert started is not None
    assert plain_start is not None
    assert stopped is not None
    assert removed is not None
    assert text.incoming.event == Text("Войскова")
    assert command.incoming.event == Command("start", "app_39744")
    assert started.incoming.event == Command("start", "tok-en_1")
    assert plain_start.incoming.event == Command("start", None)
    assert stopped.incoming.event == Reachable(False)
    assert removed.incoming.event == Reachable(False)
    peer = text.incoming.peer
    assert (peer.messenger, peer.user_id, peer.chat_id, peer.bot_id) == (
        "max",
        USER,
        chat_id,
        bot_id,
    )
    assert (peer.name, peer.username) == ("Ирина Соколова", "sokolova")
    assert chat_id != USER  # the dialog is not the user


async def test_a_press_carries_its_payload_message_and_callback(max_api: FakeMaxAPI) -> None:
    client = MaxClient(max_api.token, max_api.url)
    try:
        screen = Screen("Меню", rows(Button("Открыть", MenuIntent(MenuAction.HOME))))
        mid = await MaxExecutor(client, max_api.chat_id_of(USER)).send(screen)
    finally:
        await client.close()
    translated = translate(max_api.press(USER, "Открыть"), max_api.bot_id)
    assert translated is not None
    assert translated.incoming.event == Press(encode(MenuIntent(MenuAction.HOME)), mid)
    assert translated.origin == mid
    assert translated.callback_id == max_api.message(mid).callback_id


async def test_other_messages_and_foreign_updates(max_api: FakeMaxAPI) -> None:
    update = max_api.send_text(USER, "x")
    update["message"]["body"]["text"] = ""
    update["message"]["body"]["attachments"] = [{"type": "image", "payload": {}}]
    translated = translate(update, max_api.bot_id)
    assert translated is not None
    assert translated.incoming.event == Other("image")
    group = max_api.send_text(USER, "в группе")
    group["message"]["recipient"]["chat_type"] = "chat"
    assert translate(group, max_api.bot_id) is None
    assert translate({"update_type": "message_edited"}, max_api.bot_id) is None


async def test_each_event_has_its_own_identity_in_the_negative_range(
    max_api: FakeMaxAPI,
) -> None:
    updates = [
        max_api.send_text(USER, "раз"),
        max_api.send_text(USER, "раз"),
        max_api.start_bot(USER),
        max_api.start_bot(USER),
        max_api.stop_bot(USER) or {},
    ]
    identities = [update_identity(update) for update in updates]
    assert len(set(identities)) == len(updates)
    assert all(i is not None and re.fullmatch(r"[0-9a-f]{64}", i) for i in identities)
    assert update_identity(dict(updates[0])) == identities[0]  # a redelivery is the same event
    assert identity_key({"update_type": "message_created", "message": {}}) is None


# -- the conversation in MAX, over HTTP ------------------------------------------------------


async def test_a_screen_in_place_goes_in_the_answer_with_its_keyboard(
    max_api: FakeMaxAPI,
) -> None:
    client = MaxClient(max_api.token, max_api.url)
    chat_id = max_api.chat_id_of(USER)
    home = MenuIntent(MenuAction.HOME)
    try:
        mid = await MaxExecutor(client, chat_id).send(Screen("Один", rows(Button("А", home))))
        update = max_api.press(USER, "А")
        translated = translate(update, max_api.bot_id)
        assert translated is not None
        executor = MaxExecutor(
            client, chat_id, callback_id=translated.callback_id, origin=translated.origin
        )

        await executor.execute([Show(Screen("Два", rows(Button("Б", home)))), Notice("Сделано")])
    finally:
        await client.close()
    message = max_api.message(mid)
    assert (message.text, message.buttons()) == ("Два", [["Б"]])
    assert [call.endpoint for call in max_api.calls if call.endpoint != "POST /messages"] == [
        "POST /answers"
    ]
    assert max_api.notifications(USER) == ["Сделано"]
    assert max_api.unanswered_callbacks() == []


async def test_an_edit_that_cannot_be_made_sends_the_screen_anew(max_api: FakeMaxAPI) -> None:

    client = MaxClient(max_api.token, max_api.url)
    chat_id = max_api.chat_id_of(USER)
    try:
        executor = MaxExecutor(client, chat_id, origin="mid.gone")
        await executor.execute([Show(Screen("Новое"))])
    finally:
        await client.close()
    assert max_api.last_bot_message(USER).text == "Новое"


async def test_a_rate_limited_call_is_made_again_once(max_api: FakeMaxAPI) -> None:
    client = MaxClient(max_api.token, max_api.url)
    chat_id = max_api.chat_id_of(USER)
    max_api.fail_next("POST /messages", status=429)
    try:
        await MaxExecutor(client, chat_id).send(Screen("Дошло"))
        max_api.fail_next("POST /messages", status=429, times=2)
        with pytest.raises(MaxError) as refused:
            await MaxExecutor(client, chat_id).send(Screen("Нет"))
    finally:
        await client.close()
    assert refused.value.rate_limited
    assert [m.text for m in max_api.chat(USER)] == ["Дошло"]


async def test_a_wrong_token_is_a_401_max_error(max_api: FakeMaxAPI) -> None:
    client = MaxClient("wrong-token-0123456789", max_api.url)
    try:
        with pytest.raises(MaxError) as refused:
            await client.me()
    finally:
        await client.close()
    assert (refused.value.status, refused.value.code) == (401, "verify.token")


# -- settings ---------------------------------------------------------------------------------


def test_neither_token_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BOT_TOKEN", "MAX_BOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SettingsError) as error:
        load_settings(_env_file=None)
    assert error.value.lines == [NO_MESSENGER]
    max_only = load_settings(_env_file=None, MAX_BOT_TOKEN="f9LHodD0cOJ-test-max-token")
    assert max_only.messengers == ("max",)
    assert max_only.max_api_base == "https://platform-api2.max.ru"
    assert not max_only.max_webhook_mode


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_WEBHOOK_SECRET", "short-secret"),
        ("MAX_WEBHOOK_SECRET", "a" * 31 + "!"),
        ("MAX_BOT_TOKEN", "has spaces in it, see"),
        ("MAX_API_URL", "http://max.example.ru"),
        ("MAX_NOTIFY_RATE", "0"),
    ],
)
def test_max_settings_are_checked(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as error:
        load_settings(_env_file=None, BOT_TOKEN="123456:TEST", **{name: value})
    assert error.value.lines[0].startswith(f"Ошибка настройки: {name} задана неверно")


async def test_a_document_is_uploaded_then_sent_as_the_messages_only_attachment(
    max_api: FakeMaxAPI,
) -> None:
    """POST /uploads?type=file, the bytes to the upload URL, then POST /messages with the
    `file` attachment (alone: MAX takes no keyboard beside a file) and the caption as text; an
    `attachment.not.ready` (MAX still processing the upload) is asked again after a wait."""
    max_api.fail_next("POST /messages", status=400, code="attachment.not.ready")
    client = MaxClient(max_api.token, max_api.url)
    try:
        await MaxExecutor(client, max_api.chat_id_of(USER)).execute(
            [Document("zayavki.xlsx", b"PK\x03\x04 bytes", "Заявки: 2 <все>")]
        )
    finally:
        await client.close()
    sent = max_api.last_bot_message(USER)
    assert sent.text == "Заявки: 2 <все>"
    assert [attachment["type"] for attachment in sent.attachments] == ["file"]
    assert sent.attachments[0]["filename"] == "zayavki.xlsx"
    assert max_api.file(sent.mid) == UploadedFile("zayavki.xlsx", b"PK\x03\x04 bytes")
    upload, transfer = (c for c in max_api.calls if c.endpoint != "POST /messages")
    assert (upload.endpoint, upload.query["type"]) == ("POST /uploads", "file")
    assert transfer.endpoint == "POST /upload/{id}"
    assert [c.status for c in max_api.calls_of("POST /messages")] == [400, 200]


async def test_a_file_that_cannot_be_uploaded_is_passed_over(max_api: FakeMaxAPI) -> None:
    max_api.fail_next("POST /uploads", status=503)
    client = MaxClient(max_api.token, max_api.url)
    try:  # the update is committed by now: nothing to fail, the failure is logged
        await MaxExecutor(client, max_api.chat_id_of(USER)).execute(
            [Document("zayavki.xlsx", b"PK", "Заявки")]
        )
    finally:
        await client.close()
    assert not max_api.calls_of("POST /messages")


async def test_an_earlier_prompt_is_edited_with_its_keyboard(max_api: FakeMaxAPI) -> None:
    client = MaxClient(max_api.token, max_api.url)
    home = MenuIntent(MenuAction.HOME)
    try:
        executor = MaxExecutor(client, max_api.chat_id_of(USER))
        mid = await executor.send(Screen("Промпт", rows(Button("Отмена", home))))
        await executor.execute([Edit(mid, Screen("Уже не ждём", rows(Button("Меню", home))))])
        await executor.execute([Edit("mid.gone", Screen("Никуда"))])  # passed over quietly
    finally:
        await client.close()
    assert (max_api.message(mid).text, max_api.message(mid).buttons()) == (
        "Уже не ждём",
        [["Меню"]],
    )
    assert [m.text for m in max_api.chat(USER)] == ["Уже не ждём"]


async def test_a_revoked_max_binding_forgets_the_conversation_under_the_max_bots_id() -> None:
    cleared: list[StateKey] = []

    class Recording(RedisStates):
        async def clear(self, key: StateKey) -> None:
            cleared.append(key)

    runner = Runner.__new__(Runner)
    runner.states = Recording(cast(Any, None))
    forget = conversation_eraser(runner, 111, {"max": 222})
    assert forget is not None
    await forget("max", 7_000_001, 55)
    await forget("telegram", 1001, 1001)
    assert cleared == [StateKey(222, 55, 7_000_001, "max"), StateKey(111, 1001, 1001, "telegram")]
