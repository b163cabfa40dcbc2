"""What the conversation asks a front end to do for an update, carried out after the update's
transaction committed: nothing is shown before it is true.

A flow appends effects to the update's `Reply`; the runner (bot/conversation/runner.py)
commits, then hands them to the messenger's executor. An executor answers every press (with
the Notice, or silently), shows screens in place where it can, and never fails the update:
the change is committed by then, a messenger's refusal is logged and passed over.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Generic, Protocol, TypeVar

from bot.screens.screen import Screen
from services.domain import Role

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Show:
    """Show a screen: in place of the pressed message (a press), else as a new message."""

    screen: Screen
    in_place: bool = True


@dataclass(frozen=True)
class Notice:
    """A short answer to a press: a toast, or an alert the person must dismiss. Only a press
    has one: for a message the screens say it all."""

    text: str
    alert: bool = False


@dataclass(frozen=True)
class Edit:
    """Edit an earlier message of the bot's into `screen` (a prompt that is no longer active);
    if it can no longer be edited, nothing is sent instead."""

    message_id: str
    screen: Screen


@dataclass(frozen=True)
class Document:
    """Send a file (a list exported as .xlsx) as a new message, with a short caption."""

    filename: str
    content: bytes
    caption: str = ""


@dataclass(frozen=True)
class Remove:
    """Remove a message of the bot's (a prompt whose input has ended)."""

    message_id: str


@dataclass(frozen=True)
class Commands:
    """The commands the chat's menu offers now: those of the role, none when unlinked."""

    role: Role | None


Effect = Show | Notice | Edit | Document | Remove | Commands


@dataclass
class Reply:
    """The effects of one update, in order."""

    effects: list[Effect] = field(default_factory=list)

    def show(self, screen: Screen, *, in_place: bool = True) -> None:
        self.effects.append(Show(screen, in_place))

    def send(self, screen: Screen) -> None:
        """A new message, even for a press."""
        self.effects.append(Show(screen, in_place=False))

    def notice(self, text: str) -> None:
        self.effects.append(Notice(text))

    def alert(self, text: str) -> None:
        self.effects.append(Notice(text, alert=True))

    def edit(self, message_id: str | None, screen: Screen) -> None:
        if message_id:
            self.effects.append(Edit(message_id, screen))

    def document(self, filename: str, content: bytes, caption: str = "") -> None:
        self.effects.append(Document(filename, content, caption))

    def remove(self, message_id: str | None) -> None:
        if message_id:
            self.effects.append(Remove(message_id))

    def commands(self, role: Role | None) -> None:
        self.effects.append(Commands(role))

    def clear(self) -> None:
        self.effects.clear()


class Executor(Protocol):
    """A front end's way of carrying out effects for the update it translated."""

    async def execute(self, effects: list[Effect]) -> None: ...


A = TypeVar("A")  # a messenger's API: aiogram's Bot, the MAX client
M = TypeVar("M")  # a message's id there: Telegram's number, MAX's mid


class ChatExecutor(ABC, Generic[A, M]):
    """What every front end's executor shares: the effects of one update go to `chat_id`
    through `api`; a press is answered by `callback_id`, and `origin` is the pressed message.
    A screen shown in place (`show`) replaces the pressed message while it can still be
    edited, else it goes as a new message: a stale button never leads to a dead end."""

    def __init__(
        self, api: A, chat_id: int, *, callback_id: str | None = None, origin: M | None = None
    ) -> None:
        self.api = api
        self.chat_id = chat_id
        self.callback_id = callback_id
        self.origin = origin

    # What the messenger's client raises when it refuses a call; the effect is then logged and
    # passed over, for the change is committed by now.
    refused: ClassVar[tuple[type[Exception], ...]]

    async def execute(self, effects: list[Effect]) -> None:
        """The press answered first (no button spins), then each effect in order; none fails
        the update."""
        carried = await self.answer(effects) if self.callback_id is not None else None
        for effect in effects:
            if effect is carried:
                continue
            try:
                await self.carry_out(effect)
            except self.refused as error:
                log.warning(
                    "%s chat %s: %s not carried out: %s",
                    self.messenger,
                    self.chat_id,
                    type(effect).__name__,
                    self.reason(error),
                )

    async def carry_out(self, effect: Effect) -> None:
        if isinstance(effect, Show):
            await self.show(effect)
        elif isinstance(effect, Document):
            await self.document(effect)
        elif isinstance(effect, Edit):
            await self.edit_earlier(effect)
        elif isinstance(effect, Remove):
            await self.remove(effect.message_id)
        elif isinstance(effect, Commands):
            await self.commands(effect.role)
        # A Notice is the press's answer.

    @property
    @abstractmethod
    def messenger(self) -> str:
        """The messenger's name, for the log."""

    def reason(self, error: Exception) -> str:
        """What the log says of a refusal (never a message's contents)."""
        return type(error).__name__

    @abstractmethod
    async def answer(self, effects: list[Effect]) -> Show | None:
        """Answer the press (with `answer_of(effects)`, or empty); the screen the answer
        itself carried, if any (it is not shown again)."""

    @abstractmethod
    async def send(self, screen: Screen) -> M:
        """The screen as a new message in the chat; its id."""

    @abstractmethod
    async def document(self, effect: Document) -> None:
        """The file as a message of its own."""

    @abstractmethod
    async def edit_earlier(self, effect: Edit) -> None:
        """An earlier message (a prompt no longer active) into its new screen; if it can no
        longer be edited, the newer screen says enough."""

    @abstractmethod
    async def remove(self, message_id: str) -> None:
        """The message deleted; one already gone, or not of this messenger, is passed over."""

    async def commands(self, role: Role | None) -> None:
        """The chat's command menu for the role (a messenger without one per chat: nothing)."""

    @abstractmethod
    async def edit(self, message_id: M, screen: Screen) -> bool:
        """The message edited into the screen; False if it can no longer be edited."""

    async def show(self, effect: Show) -> None:
        if (
            effect.in_place
            and self.origin is not None
            and await self.edit(self.origin, effect.screen)
        ):
            return
        await self.send(effect.screen)


def answer_of(effects: list[Effect]) -> Notice | None:
    """The one answer a press gets (a Telegram callback answer, a MAX notification): the first
    alert (a refusal must be read), else the first toast."""
    notices = [effect for effect in effects if isinstance(effect, Notice)]
    return next((n for n in notices if n.alert), notices[0] if notices else None)
