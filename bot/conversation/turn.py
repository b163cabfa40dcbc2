"""One update of a conversation, messenger-neutral: who sent what, and what the flows see.

A front end translates its messenger's update into an `Incoming` (the sender as a `Peer`, the
event: a text, a command, a press, the start of the dialog, a block); the runner loads the
sender's binding, actor and state into a `Turn` and hands it to the conversation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import storage.models
from bot.conversation.effects import Reply
from bot.conversation.state import ChatState
from bot.settings import Settings
from services.clock import Clock
from services.domain import Actor
from storage.models import TelegramLink
from storage.repositories import Repositories
from storage.states import StateKey

# Whether storage binds users of every messenger (issue 13 item 3: `Binding`); until it does it
# binds Telegram users only, so another messenger's user is never looked up, nor bound, as the
# Telegram user with the same id: they are served as unlinked.
PER_MESSENGER_BINDINGS = hasattr(storage.models, "Binding")


def can_bind(messenger: str) -> bool:
    return PER_MESSENGER_BINDINGS or messenger == "telegram"


@dataclass(frozen=True)
class Peer:
    """A messenger user in a dialog with the bot.

    `name` and `username` are what the user chose: shown, never trusted; `user_id` is what
    the messenger vouches for.
    """

    messenger: str
    user_id: int
    chat_id: int
    name: str = ""
    username: str | None = None
    bot_id: int = 0  # the bot the dialog is with (part of the state's key)

    @property
    def state_key(self) -> StateKey:
        return StateKey(self.bot_id, self.chat_id, self.user_id)


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Command:
    """`/name args`; `name` lower-case, without the bot's @username."""

    name: str
    args: str | None = None


@dataclass(frozen=True)
class Press:
    """A button pressed: its payload, and the message it was under (to show the next screen in
    its place)."""

    payload: str
    message_id: str | None = None


@dataclass(frozen=True)
class Other:
    """A message that is not text: a photo, a voice message, a sticker…"""

    kind: str


@dataclass(frozen=True)
class Reachable:
    """The user blocked the bot (`reachable` False) or let it write again (True)."""

    reachable: bool


Event = Text | Command | Press | Other | Reachable


@dataclass(frozen=True)
class Incoming:
    peer: Peer
    event: Event
    update_id: int | None = None  # the messenger's identity of the update (exactly once)


@dataclass
class Turn:
    """What a flow works with: the sender, the database (the update's transaction), the
    sender's binding and actor, the conversation's state, and the reply being written."""

    peer: Peer
    event: Event
    repo: Repositories
    link: TelegramLink | None
    actor: Actor | None
    state: ChatState
    settings: Settings
    clock: Clock
    reply: Reply = field(default_factory=Reply)

    def linked(self) -> tuple[TelegramLink, Actor]:
        """The binding and the actor of a flow that only linked users reach (the dispatch
        lets no one else in)."""
        if self.link is None or self.actor is None:
            raise RuntimeError("a linked user's flow was reached without a binding")
        return self.link, self.actor

    @property
    def origin(self) -> str | None:
        """The message whose button was pressed, if the event is a press."""
        return self.event.message_id if isinstance(self.event, Press) else None

    @property
    def link_ttl(self) -> timedelta:
        return timedelta(seconds=self.settings.LINK_TOKEN_TTL)
