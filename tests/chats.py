"""One conversation, either messenger: a test of a flow says what a person does and sees once,
and runs against the Telegram front end (tests/harness.py, the Bot API double) and the MAX one
(tests/max_harness.py, the MAX Bot API double), so that a flow cannot work in one and silently
not in the other (the `chat` fixture, tests/conftest.py, takes each in turn).

People are named by their Telegram user id, as the seed names them (the account id + 1000;
factories.user_id_of gives their MAX user id, factories.chat_id_of their dialog). What the
messengers do differently is said here once, never by weakening what a test asserts:

* a message's id is Telegram's `message_id` or MAX's `mid` (`Shown.message_id`), its markup as
  sent Telegram's HTML or MAX's `html` format (`Shown.markup`); the text is what the person sees;
* a press's answer: Telegram shows the text as a toast or an alert (`show_alert`); MAX has one
  kind, a one-time notification (`Answer.alert` is None there: `alert()` and `toast()` name the
  answer a test expects, in the messenger's terms);
* a deep link: Telegram sends `/start <payload>`, MAX a `bot_started` event with the payload;
* the bot is blocked: Telegram's `my_chat_member` (kicked), MAX's `bot_stopped`;
* the command list: Telegram's per chat, following the active role; MAX's one for the bot
  (`commands`);
* a press: in Telegram from any message; in MAX only from a message with the bot's keyboard,
  forged ones too (`can_press`);
* texts that name the messenger: `name`; a message's length limit: `text_limit`.

Telegram's update parsing, webhook, flood control and «message is not modified» have no MAX
counterpart and stay in the Telegram-only tests. The MAX double's per-dialog limits (2 a second)
are off here, and so is the client's pacing to them, as the Telegram double's are: a test
presses far faster than a person, and the pacing has its own tests (test_max_flows.py, the
sender's).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.conversation.runner import Runner
from bot.max.effects import MaxExecutor
from bot.max.sender import MaxSender
from bot.screens.screen import Screen
from bot.settings import Settings
from bot.telegram.effects import TelegramExecutor
from bot.telegram.sender import TelegramSender
from bot.texts.messengers import messenger_name
from services.clock import ManualClock
from services.outbox import OutboxWorker
from storage.models import Binding
from tests import factories
from tests.fakes import bot_api, max_api
from tests.harness import BotHarness, test_settings
from tests.max_harness import MaxHarness, max_settings

MESSENGERS = ("telegram", "max")


@dataclass(frozen=True)
class Shown:
    """A message of a person's chat with the bot, as it is now (the double's record, live)."""

    person: int
    raw: bot_api.Message | max_api.Message

    text = property(lambda self: self.raw.text, doc="What the person sees.")
    from_bot = property(lambda self: self.raw.from_bot)
    deleted = property(lambda self: self.raw.deleted)

    @property
    def message_id(self) -> int | str:
        return self.raw.message_id if isinstance(self.raw, bot_api.Message) else self.raw.mid

    @property
    def markup(self) -> str | None:
        """The text as the bot sent it, with its markup (None for the person's messages)."""
        return self.raw.html if isinstance(self.raw, bot_api.Message) else self.raw.source

    def buttons(self) -> list[list[str]]:
        return self.raw.buttons()

    def payload(self, label: str) -> str:
        """What pressing the button sends the bot: Telegram's callback data, MAX's payload."""
        button = self.raw.button(label)
        return str(button["callback_data" if isinstance(self.raw, bot_api.Message) else "payload"])


@dataclass(frozen=True)
class Answer:
    """The answer to the last press: its text, and whether Telegram showed it as an alert
    (None in MAX, which has only one-time notifications)."""

    text: str | None
    alert: bool | None


class Chat(ABC):
    """People talking to the bot in one messenger, through its double and the real front end."""

    messenger: str
    text_limit: int
    make_settings: Callable[..., Settings]

    def __init__(self, harness: BotHarness | MaxHarness) -> None:
        self.harness = harness
        self.settings: Settings = harness.settings
        self.session_factory: async_sessionmaker[AsyncSession] = harness.session_factory
        self.clock: ManualClock = harness.clock  # type: ignore[assignment]

    @property
    def runner(self) -> Runner:
        """The conversation's runner of this bot."""
        harness = self.harness
        return harness.runner if isinstance(harness, MaxHarness) else harness.dp["runner"]

    @property
    def name(self) -> str:
        """The messenger's name, as the texts say it."""
        return messenger_name(self.messenger)

    def user_id(self, person: int) -> int:
        return factories.user_id_of(person, self.messenger)

    def chat_id(self, person: int) -> int:
        return factories.chat_id_of(person, self.messenger)

    # -- acting as people --------------------------------------------------------------------

    @abstractmethod
    def add_user(self, person: int, first_name: str, *, username: str = "") -> None:
        """A person with a chat with the bot (or the person, renamed)."""

    async def send(self, person: int, text: str) -> Shown:
        """The person writes; the bot's newest message afterwards."""
        self._send_text(person, text)
        await self.feed_pending()
        return self.last(person)

    async def send_media(self, person: int, kind: str) -> Shown:
        """A photo, a voice message, a sticker or a document (`kind`), without a caption."""
        self.harness.api.send_media(self.user_id(person), kind)
        await self.feed_pending()
        return self.last(person)

    async def start(self, person: int, payload: str | None = None) -> Shown:
        """The person opens the bot, by a deep link with `payload` if given."""
        self._start(person, payload)
        await self.feed_pending()
        return self.last(person)

    async def press(self, person: int, label: str, message_id: int | str | None = None) -> Shown:
        """The person presses a button by its label (of `message_id`, else of the newest
        message that has it); the bot's newest message afterwards."""
        self._press(person, label, message_id)
        await self.feed_pending()
        return self.last(person)

    async def press_on(self, message: Shown, label: str) -> Shown:
        """A button of a given message pressed; that message as it is afterwards."""
        await self.press(message.person, label, message.message_id)
        return self.message(message.person, message.message_id)

    def can_press(self, message: Shown) -> bool:
        """Whether a press (a forged one too) can come from the message: in Telegram from any
        message; in MAX only from one with the bot's keyboard (a press carries its callback id)."""
        return self.messenger == "telegram" or bool(message.buttons())

    async def press_data(self, person: int, data: str, message_id: int | str) -> None:
        """A press with any payload (a forged one) on a message."""
        self._press_data(person, data, message_id)
        await self.feed_pending()

    async def block(self, person: int) -> None:
        """The person blocks (stops) the bot."""
        self._block(person)
        await self.feed_pending()

    async def show(self, person: int, screen: Screen) -> Shown:
        """A screen sent to the person's chat as the bot sends any (a push's buttons, say)."""
        await self._executor(person).send(screen)
        return self.last(person)

    @abstractmethod
    async def feed_pending(self) -> None: ...

    # -- what people see ---------------------------------------------------------------------

    @abstractmethod
    def history(self, person: int) -> list[Shown]:
        """The chat's messages, the person's and the bot's, in order; deleted ones left out."""

    def bot_messages(self, person: int) -> list[Shown]:
        return [message for message in self.history(person) if message.from_bot]

    @abstractmethod
    def message(self, person: int, message_id: int | str) -> Shown:
        """One message of the chat, deleted or not."""

    def last(self, person: int) -> Shown:
        """The bot's newest message in the chat."""
        return Shown(person, self.harness.api.last_bot_message(self.user_id(person)))

    @abstractmethod
    def answers(self) -> list[Answer]:
        """The answers to the presses so far, in order."""

    def answer(self) -> Answer:
        """The answer to the last press."""
        return self.answers()[-1]

    @abstractmethod
    def alert(self, text: str) -> Answer:
        """A refusal's answer as the messenger shows it."""

    @abstractmethod
    def toast(self, text: str) -> Answer:
        """A passing answer as the messenger shows it."""

    @abstractmethod
    def commands(self, person: int) -> list[str] | None:
        """The commands the person's chat lists, None if none are set (Telegram's follow the
        active role per chat; MAX has one list for the bot)."""

    @abstractmethod
    def sent_texts(self) -> list[str]:
        """Every text the bot sent or put in place, as sent."""

    # -- the bot's side ----------------------------------------------------------------------

    def settings_with(self, **overrides: Any) -> Settings:
        """The settings of this bot with some changed."""
        return self.make_settings(self.harness.api, self.settings.DATABASE_URL, **overrides)

    @abstractmethod
    def notifier(self, settings: Settings | None = None) -> OutboxWorker[Screen]:
        """The outbox dispatcher of this messenger."""

    async def deliver(self) -> None:
        """Send what the outbox holds, as the dispatcher would; the clock moves on a second
        after each round (the per-chat pacing)."""
        notifier = self.notifier()
        while await notifier.drain():
            self.clock.advance(seconds=1)

    @asynccontextmanager
    async def another(self, **overrides: Any) -> AsyncIterator[Chat]:
        """Another process of the bot (a replica, a restart) over the same double and database,
        with its settings changed by `overrides`."""
        other = self._another(self.settings_with(**overrides))
        try:
            yield other
        finally:
            await other.harness.close()

    async def close(self) -> None:
        await self.harness.close()

    def assert_no_errors(self) -> None:
        self.harness.assert_no_errors()

    # -- the database ------------------------------------------------------------------------

    async def bind(
        self, session: AsyncSession, account_id: int, person: int, role: str, **fields: Any
    ) -> Binding:
        """Bind the person in this messenger to an account (factories.link)."""
        return await factories.link(
            session,
            account_id,
            self.user_id(person),
            role,
            messenger=self.messenger,
            chat_id=self.chat_id(person),
            **fields,
        )

    async def binding(self, person: int) -> Binding | None:
        """The person's binding in this messenger, with its account."""
        async with self.session_factory() as session:
            return await session.scalar(
                select(Binding).where(
                    Binding.messenger == self.messenger, Binding.user_id == self.user_id(person)
                )
            )

    # -- each messenger's own ----------------------------------------------------------------

    @abstractmethod
    def _send_text(self, person: int, text: str) -> None: ...

    @abstractmethod
    def _start(self, person: int, payload: str | None) -> None: ...

    @abstractmethod
    def _press(self, person: int, label: str, message_id: int | str | None) -> None: ...

    @abstractmethod
    def _press_data(self, person: int, data: str, message_id: int | str) -> None: ...

    @abstractmethod
    def _block(self, person: int) -> None: ...

    @abstractmethod
    def _executor(self, person: int) -> TelegramExecutor | MaxExecutor: ...

    @abstractmethod
    def _another(self, settings: Settings) -> Chat: ...


class TelegramChat(Chat):
    messenger = "telegram"
    text_limit = 4096  # UTF-16 code units of a message's text (Bot API)
    make_settings = staticmethod(test_settings)
    harness: BotHarness

    def __init__(self, harness: BotHarness) -> None:
        super().__init__(harness)
        self.api = harness.api

    def add_user(self, person: int, first_name: str, *, username: str = "") -> None:
        self.api.add_user(person, first_name, username=username or None)

    async def feed_pending(self) -> None:
        await self.harness.feed_pending()

    def history(self, person: int) -> list[Shown]:
        return [Shown(person, message) for message in self.api.chat(person)]

    def message(self, person: int, message_id: int | str) -> Shown:
        return Shown(person, self.api.message(person, int(message_id)))

    def answers(self) -> list[Answer]:
        calls = self.api.calls_of("answerCallbackQuery")
        return [Answer(c.params.get("text"), bool(c.params.get("show_alert"))) for c in calls]

    def alert(self, text: str) -> Answer:
        return Answer(text, True)

    def toast(self, text: str) -> Answer:
        return Answer(text, False)

    def sent_texts(self) -> list[str]:
        calls = self.api.calls_of("sendMessage") + self.api.calls_of("editMessageText")
        return [str(call.params["text"]) for call in calls]

    def commands(self, person: int) -> list[str] | None:
        found = self.api.commands_for({"type": "chat", "chat_id": person})
        return None if found is None else [command["command"] for command in found]

    def notifier(self, settings: Settings | None = None) -> OutboxWorker[Screen]:
        return TelegramSender(self.harness.bot, settings or self.settings).worker(
            self.session_factory, self.clock
        )

    def _send_text(self, person: int, text: str) -> None:
        self.api.send_text(person, text)

    def _start(self, person: int, payload: str | None) -> None:
        self.api.send_text(person, "/start" if payload is None else f"/start {payload}")

    def _press(self, person: int, label: str, message_id: int | str | None) -> None:
        self.api.press(person, label, None if message_id is None else int(message_id))

    def _press_data(self, person: int, data: str, message_id: int | str) -> None:
        self.api.press_data(person, data, int(message_id))

    def _block(self, person: int) -> None:
        self.api.block(person)

    def _executor(self, person: int) -> TelegramExecutor:
        return TelegramExecutor(self.harness.bot, person)

    def _another(self, settings: Settings) -> Chat:
        return TelegramChat(BotHarness(self.api, settings, self.session_factory, self.clock))


class MaxChat(Chat):
    messenger = "max"
    text_limit = 4000  # characters of a message's text (MAX); the double counts UTF-16 units
    make_settings = staticmethod(max_settings)
    harness: MaxHarness

    def __init__(self, harness: MaxHarness) -> None:
        super().__init__(harness)
        self.api = harness.api
        self.api.set_rate_limits(None, answers_per_chat_per_second=None)
        # With the double's per-dialog limits off, the client need not keep to them either.
        harness.client.messages.interval = 0.0
        harness.client.answers.interval = 0.0

    def add_user(self, person: int, first_name: str, *, username: str = "") -> None:
        user = self.user_id(person)
        try:
            self.api.rename_user(user, first_name, username or None)
        except LookupError:
            self.api.add_user(
                user, first_name, None, username or None, chat_id=self.chat_id(person)
            )

    async def feed_pending(self) -> None:
        await self.harness.feed_pending()

    def history(self, person: int) -> list[Shown]:
        return [Shown(person, message) for message in self.api.chat(self.user_id(person))]

    def message(self, person: int, message_id: int | str) -> Shown:
        found = self.api.message(str(message_id))
        assert found.chat_id == self.chat_id(person), "a message of another dialog"
        return Shown(person, found)

    def answers(self) -> list[Answer]:
        calls = [call for call in self.api.calls_of("POST /answers") if call.ok]
        return [Answer((call.body or {}).get("notification"), None) for call in calls]

    def alert(self, text: str) -> Answer:
        return Answer(text, None)

    def toast(self, text: str) -> Answer:
        return Answer(text, None)

    def commands(self, person: int) -> list[str] | None:
        found = self.api.commands
        return None if found is None else [command["name"] for command in found]

    def sent_texts(self) -> list[str]:
        bodies = [call.body or {} for call in self.api.calls_of("POST /messages")]
        bodies += [call.body or {} for call in self.api.calls_of("PUT /messages")]
        bodies += [
            (call.body or {}).get("message") or {} for call in self.api.calls_of("POST /answers")
        ]
        return [str(body["text"]) for body in bodies if "text" in body]

    def notifier(self, settings: Settings | None = None) -> OutboxWorker[Screen]:
        return MaxSender(self.harness.client, settings or self.settings).worker(
            self.session_factory, self.clock
        )

    def _send_text(self, person: int, text: str) -> None:
        self.api.send_text(self.user_id(person), text)

    def _start(self, person: int, payload: str | None) -> None:
        self.api.start_bot(self.user_id(person), payload)

    def _press(self, person: int, label: str, message_id: int | str | None) -> None:
        self.api.press(self.user_id(person), label, None if message_id is None else str(message_id))

    def _press_data(self, person: int, data: str, message_id: int | str) -> None:
        self.api.press_payload(self.user_id(person), data, str(message_id))

    def _block(self, person: int) -> None:
        self.api.stop_bot(self.user_id(person))

    def _executor(self, person: int) -> MaxExecutor:
        return MaxExecutor(self.harness.client, self.chat_id(person))

    def _another(self, settings: Settings) -> Chat:
        return MaxChat(MaxHarness(self.api, settings, self.session_factory, self.clock))


# -- the list screens, as a person reads them ------------------------------------------------

ROW = re.compile(r"№(\d+) · ")


def labels(message: Shown) -> list[str]:
    """The message's button labels, row after row."""
    return [label for row in message.buttons() for label in row]


def numbers_on(message: Shown) -> list[int]:
    """The applications listed on a list screen, in order."""
    return [int(match.group(1)) for label in labels(message) if (match := ROW.search(label))]


def row_label(message: Shown, number: int) -> str:
    return next(label for label in labels(message) if f"№{number} · " in label)


async def open_list(chat: Chat, person: int) -> Shown:
    """The main menu's first button: the person's list of applications."""
    menu = await chat.send(person, "/menu")
    return await chat.press(person, menu.buttons()[0][0])


async def open_card(chat: Chat, person: int, number: int) -> Shown:
    """Open a card the way a person does: the list, the filter «Все» (where it is not chosen
    already), pages, the row."""
    listing = await open_list(chat, person)
    if "Все" in labels(listing):
        listing = await chat.press(person, "Все")
    while number not in numbers_on(listing):
        listing = await chat.press(person, "▶")
    return await chat.press(person, row_label(listing, number))
