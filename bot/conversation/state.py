"""A conversation's state between updates, messenger-neutral: the pending text input (a comment
being typed, a search) and the list choices (the last search, staff's organisation and
programme).

Kept by a StateStore (storage/states.py) under the names the Telegram-only bot used with
aiogram's FSM (`AppInput:decision_comment` …), so an input in progress at an upgrade goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bot.conversation.intents import AppIntent, ListIntent, as_intent, encode
from services.domain import Action
from storage.states import RawState

INPUT_DATA = ("prompt", "card", "decision", "back")  # what a pending input remembers


class Input(StrEnum):
    """What the next text is for."""

    DECISION_COMMENT = "AppInput:decision_comment"  # the comment of a decision (optional)
    COMMENT = "AppInput:comment"  # a comment to the application's thread
    SEARCH = "AppInput:search"  # a name or a number to search the list for
    BULK_COMMENT = "AppInput:bulk_comment"  # one comment for a bulk approval (optional)


@dataclass(frozen=True)
class Left:
    """An input that ended because the person went elsewhere (a button, a command)."""

    input: Input
    card: AppIntent
    decision: Action | None


@dataclass(frozen=True)
class Held:
    """A text kept until the person chooses what it is for."""

    text: str
    action: Action
    number: int | None


@dataclass
class ChatState:
    input: Input | None = None
    data: dict[str, Any] = field(default_factory=dict)
    changed: bool = False

    @classmethod
    def from_raw(cls, raw: RawState) -> ChatState:
        try:
            pending = Input(raw.name) if raw.name else None
        except ValueError:
            pending = None
        return cls(pending, dict(raw.data or {}))

    def to_raw(self) -> RawState:
        return RawState(self.input.value if self.input else None, dict(self.data) or None)

    # -- the pending input -----------------------------------------------------------------

    def begin(
        self,
        pending: Input,
        *,
        prompt: str | None,
        card: AppIntent | None = None,
        decision: Action | None = None,
        back: ListIntent | None = None,
    ) -> None:
        """Wait for a text: `prompt` is the message asking for it; the card (and decision) or
        the list it belongs to."""
        self.input = pending
        for name in INPUT_DATA:
            self.data.pop(name, None)
        if prompt is not None:
            self.data["prompt"] = prompt
        if card is not None:
            self.data["card"] = encode(card)
        if decision is not None:
            self.data["decision"] = decision.value
        if back is not None:
            self.data["back"] = encode(back)
        self.changed = True

    def end(self) -> None:
        """The input is over (done, abandoned or cancelled); what it was for is forgotten."""
        if self.input is None and not any(name in self.data for name in INPUT_DATA):
            return
        self.input = None
        for name in INPUT_DATA:
            self.data.pop(name, None)
        self.changed = True

    @property
    def prompt(self) -> str | None:
        prompt = self.data.get("prompt")
        return str(prompt) if isinstance(prompt, int | str) and prompt != "" else None

    @property
    def card(self) -> AppIntent | None:
        packed = self.data.get("card")
        return as_intent(packed, AppIntent) if isinstance(packed, str) else None

    @property
    def decision(self) -> Action | None:
        try:
            return Action(str(self.data.get("decision")))
        except ValueError:
            return None

    @property
    def back(self) -> ListIntent | None:
        packed = self.data.get("back")
        return as_intent(packed, ListIntent) if isinstance(packed, str) else None

    # -- an input left, and a text held for the person's choice ----------------------------

    def leave(self) -> None:
        """The pending input ends because the person went elsewhere: what it was for is kept
        for the next update only (a text meant for it is then not taken for something else)."""
        left: dict[str, str] = {}
        if self.input is not None:
            left["input"] = self.input.value
        for name in ("card", "decision"):
            value = self.data.get(name)
            if isinstance(value, str):
                left[name] = value
        self.end()
        self.data["left"] = left
        self.changed = True

    def take_left(self) -> Left | None:
        """The input the previous update left, if any; forgotten now."""
        raw = self.data.pop("left", None)
        if raw is None:
            return None
        self.changed = True
        if not isinstance(raw, dict):
            return None
        try:
            pending = Input(str(raw.get("input")))
        except ValueError:
            return None
        card = as_intent(raw["card"], AppIntent) if isinstance(raw.get("card"), str) else None
        if card is None:
            return None
        try:
            decision = Action(str(raw["decision"])) if "decision" in raw else None
        except ValueError:
            decision = None
        return Left(pending, card, decision)

    def hold(self, text: str, action: Action, number: int | None) -> None:
        """Keep a text until the person says what it is for: `action` on application `number`
        (None: any application the person may comment on)."""
        held: dict[str, Any] = {"text": text, "action": action.value}
        if number is not None:
            held["number"] = number
        self.data["held"] = held
        self.changed = True

    @property
    def held(self) -> Held | None:
        raw = self.data.get("held")
        if not isinstance(raw, dict) or not isinstance(raw.get("text"), str):
            return None
        try:
            action = Action(str(raw.get("action")))
        except ValueError:
            return None
        number = raw.get("number")
        return Held(raw["text"], action, number if isinstance(number, int) else None)

    def drop_held(self) -> None:
        if "held" in self.data:
            del self.data["held"]
            self.changed = True

    # -- bulk approval -----------------------------------------------------------------------

    def numbers(self, name: str) -> list[int]:
        """The applications picked (`picked`) or confirmed (`bulk`) for a bulk approval."""
        value = self.data.get(name)
        if not isinstance(value, list):
            return []
        return [n for n in value if isinstance(n, int) and not isinstance(n, bool)]

    def set_numbers(self, name: str, numbers: list[int]) -> None:
        self._set(name, list(numbers) or None)

    # -- the consent shown ------------------------------------------------------------------

    @property
    def consent_shown(self) -> str | None:
        """The version of the consent text last shown in the chat (None: not yet)."""
        value = self.data.get("consent")
        return value if isinstance(value, str) else None

    def set_consent_shown(self, version: str | None) -> None:
        self._set("consent", version)

    # -- list choices ----------------------------------------------------------------------

    @property
    def search(self) -> str | None:
        value = self.data.get("search")
        return value if isinstance(value, str) else None

    def set_search(self, query: str | None) -> None:
        self._set("search", query)

    @property
    def organization(self) -> int | None:
        value = self.data.get("organization")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def program(self) -> str | None:
        value = self.data.get("program")
        return value if isinstance(value, str) else None

    def set_narrowing(self, organization: int | None, program: str | None) -> None:
        self._set("organization", organization)
        self._set("program", program)

    def clear(self) -> None:
        """Everything forgotten (/logout)."""
        if self.input is not None or self.data:
            self.input = None
            self.data = {}
            self.changed = True

    def _set(self, name: str, value: object) -> None:
        if value is None:
            if name in self.data:
                del self.data[name]
                self.changed = True
        elif self.data.get(name) != value:
            self.data[name] = value
            self.changed = True
