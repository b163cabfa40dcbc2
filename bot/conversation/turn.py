"""One update of a conversation, messenger-neutral: who sent what, and what the flows see.

A front end translates its messenger's update into an `Incoming` (the sender as a `Peer`, the
event: a text, a command, a press, the start of the dialog, a block); the runner loads the
sender's binding, actor and state into a `Turn` and hands it to the conversation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from bot.conversation.effects import Reply
from bot.conversation.state import ChatState
from bot.settings import Settings
from services.clock import Clock
from services.domain import Actor, Source
from services.linking import MessengerUser
from storage.models import Account, Binding
from storage.repositories import Repositories
from storage.senders import BindingFacts, Facts
from storage.states import StateKey


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
        return StateKey(self.bot_id, self.chat_id, self.user_id, self.messenger)

    @property
    def user(self) -> MessengerUser:
        """The sender as the linking services take them."""
        return MessengerUser(self.messenger, self.user_id, self.chat_id, self.username, self.name)


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
    # The messenger's identity of the update, for exactly once (Telegram: the update_id; MAX:
    # the event's own id, a message's mid or a callback's id); None: not deduplicated.
    update_id: int | str | None = None


@dataclass
class Turn:
    """What a flow works with: the sender, the database (the update's transaction), the
    sender's binding in this messenger (with its account: what belongs to the person) and
    actor, the conversation's state, and the reply being written.

    The binding is read as plain rows (storage/senders.py); a flow that changes the account
    asks `for_change` for the ORM's objects, which `binding` and `account` give from then on.
    """

    peer: Peer
    event: Event
    repo: Repositories
    binding: BindingFacts | None
    actor: Actor | None
    state: ChatState
    settings: Settings
    clock: Clock
    reply: Reply = field(default_factory=Reply)

    def linked(self) -> tuple[Facts, Actor]:
        """The account (to read) and the actor of a flow that only bound users reach (the
        dispatch lets no one else in)."""
        if self.binding is None or self.actor is None:
            raise RuntimeError("a linked user's flow was reached without a binding")
        return self.binding.account, self.actor

    @property
    def account(self) -> Facts | None:
        """The sender's account (to read), if they are bound."""
        return self.binding.account if self.binding is not None else None

    async def for_change(self) -> Account:
        """The sender's account as the ORM's object, for a flow that changes it (written with
        the update's commit): loaded with the binding on the first call, then what `binding`
        and `account` give, so that the flow reads what it changed."""
        binding = self.binding
        if binding is None:
            raise RuntimeError("a linked user's flow was reached without a binding")
        if not isinstance(binding, Binding):
            loaded = await self.repo.links.by_user(binding.messenger, binding.user_id)
            if loaded is None or loaded.id != binding.id:
                raise RuntimeError("the sender's binding is gone")
            self.binding = binding = loaded
        return binding.account

    @property
    def source(self) -> Source:
        """Where history says a decision made in this turn came from: the messenger."""
        return Source(self.peer.messenger)

    @property
    def origin(self) -> str | None:
        """The message whose button was pressed, if the event is a press."""
        return self.event.message_id if isinstance(self.event, Press) else None

    @property
    def link_ttl(self) -> timedelta:
        return timedelta(seconds=self.settings.LINK_TOKEN_TTL)
