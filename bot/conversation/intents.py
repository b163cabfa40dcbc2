"""What a button asks for: typed intents, and the payload a messenger carries for them.

Every button of every screen carries one intent; the messenger gives its payload back when the
button is pressed (Telegram: callback_data, at most 64 bytes; MAX: a callback button's
payload). Payloads are short: a prefix, the codec's version, then the intent's fields by
position (integers, one- or two-letter enum values, `1`/`0`, empty for none); never names or
Russian text. Every press is authorised again on the server: payloads can be forged, so a
payload that does not decode, or whose values are out of range, decodes to None.

Old buttons survive: fields are only ever appended to an intent, a payload missing the later
fields gets their defaults, and one with more fields than this code knows (a newer replica's)
keeps the ones it knows. Payloads written before the version existed (aiogram's CallbackData
of the Telegram-only bot: `prefix:field:…`) decode as version 1, with the same fields.
"""

from __future__ import annotations

import dataclasses
import operator
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from enum import Enum, StrEnum
from typing import Any, ClassVar, TypeVar

from services.domain import Role, Status

VERSION = 2
PAYLOAD_LIMIT = 64  # bytes: Telegram's callback_data (MAX allows more)
SEPARATOR = ":"
MAX_ID = 2**63 - 1
MAX_PAGE = 100_000

# --- the enums of the intents (their values are part of the payloads: never change them) ------


class MenuAction(StrEnum):
    HOME = "h"
    APPLICATIONS = "a"
    NOTIFICATIONS = "n"
    PROFILE = "p"
    HELP = "q"


class LinkAction(StrEnum):
    SWITCH = "sw"  # switch to the account of a redeemed token
    KEEP = "kp"  # keep the current account
    LOGOUT = "lo"  # /logout confirmed
    STAY = "st"  # /logout cancelled
    ALLOW_MOVE = "am"  # the bound owner lets the account move to another messenger user
    DENY_MOVE = "dm"  # the bound owner keeps it
    ASK_LOGOUT = "al"  # «🚪 Выйти» in the profile: ask as /logout does


class ConsentAction(StrEnum):
    ACCEPT = "ok"
    SHOW = "sh"  # show the consent text again (from the message pointing to it)


class ProfileAction(StrEnum):
    ROLES = "r"  # list the account's roles
    SET_ROLE = "s"  # make `role` active


class StatusCode(StrEnum):
    """An application status in one letter: the status a screen showed when it was drawn."""

    NEW = "n"
    APPROVED = "a"
    CANCELLED = "c"
    INCLUDED = "i"

    @property
    def status(self) -> Status:
        return _STATUS_BY_CODE[self]

    @classmethod
    def of(cls, status: Status) -> StatusCode:
        return _CODE_BY_STATUS[status]


_STATUS_BY_CODE = {
    StatusCode.NEW: Status.NEW,
    StatusCode.APPROVED: Status.APPROVED,
    StatusCode.CANCELLED: Status.CANCELLED,
    StatusCode.INCLUDED: Status.INCLUDED,
}
_CODE_BY_STATUS = {status: code for code, status in _STATUS_BY_CODE.items()}


class ListFilter(StrEnum):
    """The status filter of an applications list: one status or all of them."""

    NEW = "n"
    APPROVED = "a"
    CANCELLED = "c"
    INCLUDED = "i"
    ALL = "x"

    @property
    def status(self) -> Status | None:
        return None if self is ListFilter.ALL else StatusCode(self.value).status


class ListAction(StrEnum):
    SHOW = "s"
    SEARCH = "f"  # ask for a name or number to search
    CLEAR = "x"  # drop the search, keep the filter
    FIND_HELD = "t"  # search for the text kept for the person's choice
    EXPORT = "e"  # «📤 Выгрузить»: the list as filtered, every page, as an .xlsx document


class AppAction(StrEnum):
    OPEN = "o"
    APPROVE = "ap"
    CANCEL = "c"
    INCLUDE = "in"
    COMMENTS = "cm"
    ADD_COMMENT = "ac"
    HISTORY = "h"
    CANCEL_CONFIRMED = "cy"  # «Да, отменить»: now ask for the reason
    APPROVE_NO_COMMENT = "an"  # «Без комментария» after «Одобрить»
    CANCEL_NO_COMMENT = "cn"  # «Без комментария» after «Отменить»
    INCLUDE_NO_COMMENT = "inn"  # «Без комментария» after «Включить в группу»
    ABORT = "x"  # «Отмена» of a pending input: back to the card, nothing changed
    USE_HELD = "ut"  # use the text kept for the person's choice (a comment, a decision's)


class Facet(StrEnum):
    """A filter of staff's list beside the status: by organisation or by programme."""

    ORGANIZATION = "o"
    PROGRAM = "p"


class FacetAction(StrEnum):
    CHOOSE = "c"  # a page of the organisations (programmes) to choose from
    SET = "s"  # narrow the list to the chosen one
    CLEAR = "x"  # every organisation (programme) again


class BulkAction(StrEnum):
    """Approving several of the director's «Не обработана» applications at once."""

    ALL = "a"  # «✅ Одобрить все (N)»: confirm the whole list
    PICK = "p"  # «☑️ Выбрать несколько»: the list to pick from, nothing picked yet
    PAGE = "n"  # another page of the list to pick from, the picks kept
    TOGGLE = "t"  # pick or unpick `number`
    PICKED = "c"  # confirm the picked ones
    COMMENT = "m"  # «✍️ С комментарием»: ask one comment for all
    APPROVE = "g"  # approve the confirmed ones (without a comment)


class NotifyAction(StrEnum):
    MUTE = "m"
    UNMUTE = "u"
    DIGEST_OFF = "d0"
    DIGEST_ON = "d1"
    PUSH_TELEGRAM = "pt"  # pushes to Telegram only (a person bound in both messengers)
    PUSH_MAX = "pm"  # to MAX only
    PUSH_BOTH = "pb"  # to both


# --- the intents ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Intent:
    """Base of every intent; `PREFIX` names the kind in payloads."""

    PREFIX: ClassVar[str] = ""

    def pack(self) -> str:
        """The payload of a button carrying this intent (see `encode`)."""
        return encode(self)


@dataclass(frozen=True)
class MenuIntent(Intent):
    PREFIX: ClassVar[str] = "m"
    action: MenuAction


@dataclass(frozen=True)
class LinkIntent(Intent):
    """Linking decisions; `token` is the id of the link token row to switch to, or of the
    request to move an account (0: none)."""

    PREFIX: ClassVar[str] = "l"
    action: LinkAction
    token: int = 0


@dataclass(frozen=True)
class ConsentIntent(Intent):
    PREFIX: ClassVar[str] = "c"
    action: ConsentAction


@dataclass(frozen=True)
class ProfileIntent(Intent):
    PREFIX: ClassVar[str] = "p"
    action: ProfileAction
    role: Role | None = None


@dataclass(frozen=True)
class ListIntent(Intent):
    """A page of the applications list; `search` applies the user's last search query,
    `narrowed` the organisation and programme the user chose (staff's filters)."""

    PREFIX: ClassVar[str] = "al"
    action: ListAction = ListAction.SHOW
    status_filter: ListFilter = ListFilter.NEW
    page: int = 0
    search: bool = False
    narrowed: bool = False


@dataclass(frozen=True)
class AppIntent(Intent):
    """An action on one application.

    `page` is the page of a paginated view (history, comments). `status` is the status the
    screen showed (None on pushes, which are drawn later than their text was decided): a
    decision made from a screen that has gone stale meets the new status, not a blind write.
    `status_filter`, `list_page`, `search` and `narrowed` say which list «◀ К списку» returns
    to.
    """

    PREFIX: ClassVar[str] = "a"
    action: AppAction
    number: int
    page: int = 0
    status: StatusCode | None = None
    status_filter: ListFilter = ListFilter.NEW
    list_page: int = 0
    search: bool = False
    narrowed: bool = False

    def to(self, action: AppAction, *, page: int = 0) -> AppIntent:
        """The same application and list, another action."""
        return replace(self, action=action, page=page)

    def seen(self, status: Status) -> AppIntent:
        return replace(self, status=StatusCode.of(status))

    def back_to_list(self) -> ListIntent:
        return ListIntent(
            status_filter=self.status_filter,
            page=self.list_page,
            search=self.search,
            narrowed=self.narrowed,
        )


@dataclass(frozen=True)
class FacetIntent(Intent):
    """Choosing an organisation or a programme for the list.

    `choice` is an id, never a name: an organisation's id, or for a programme the number of an
    application with that programme (programmes have no ids of their own). `status_filter`,
    `search` and `narrowed` are the list the choice applies to.
    """

    PREFIX: ClassVar[str] = "af"
    action: FacetAction
    facet: Facet
    choice: int = 0
    page: int = 0
    status_filter: ListFilter = ListFilter.APPROVED
    search: bool = False
    narrowed: bool = False

    def back_to_list(self) -> ListIntent:
        return ListIntent(
            status_filter=self.status_filter, search=self.search, narrowed=self.narrowed
        )


@dataclass(frozen=True)
class BulkIntent(Intent):
    """Bulk approval on the director's list; `search` applies the last search, as the list
    did. The applications confirmed are kept in the conversation's state, never in payloads."""

    PREFIX: ClassVar[str] = "b"
    action: BulkAction
    item: int = 0  # the application picked or unpicked (0: none)
    page: int = 0
    search: bool = False


@dataclass(frozen=True)
class NotifyIntent(Intent):
    """A setting of «🔔 Уведомления»; each action sets a state, so a repeated press is harmless."""

    PREFIX: ClassVar[str] = "nt"
    action: NotifyAction


# --- the codec -----------------------------------------------------------------------------

IntentT = TypeVar("IntentT", bound=Intent)
Decoder = Callable[[str], Any]

# Bounds of integer fields, by name: forged values that would not fit the database decode to
# None instead of reaching a query.
BOUNDS: dict[str, tuple[int, int]] = {
    "number": (1, MAX_ID),
    "token": (0, MAX_ID),
    "choice": (-MAX_ID - 1, MAX_ID),
    "page": (0, MAX_PAGE),
    "list_page": (0, MAX_PAGE),
}


class Malformed(ValueError):
    """A payload that is not one of ours (or no longer means anything)."""


def _decoder(name: str, hint: Any) -> Decoder:
    optional = False
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        optional, hint = True, args[0]

    def decode(raw: str) -> Any:
        if raw == "":
            if optional:
                return None
            raise Malformed(name)
        if hint is bool:
            if raw not in ("0", "1"):
                raise Malformed(name)
            return raw == "1"
        if hint is int:
            if not re.fullmatch(r"-?\d{1,19}", raw):
                raise Malformed(name)
            value = int(raw)
            low, high = BOUNDS.get(name, (-MAX_ID - 1, MAX_ID))
            if not low <= value <= high:
                raise Malformed(name)
            return value
        if isinstance(hint, type) and issubclass(hint, Enum):
            try:
                return hint(raw)
            except ValueError:
                raise Malformed(name) from None
        raise TypeError(f"field {name} of type {hint!r} cannot be decoded")

    return decode


def _encode_value(value: Any) -> str:
    if value is None:
        return ""
    if value is True or value is False:
        return "1" if value else "0"
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


@dataclass(frozen=True)
class _Kind:
    cls: type[Intent]
    names: tuple[str, ...]
    decoders: tuple[Decoder, ...]
    required: int  # fields without a default come first
    defaults: tuple[str | None, ...]  # each field's default as encoded (None: no default)
    values: Callable[[Intent], tuple[Any, ...]]  # the fields' values, in order


_KINDS: dict[str, _Kind] = {}


def _register(cls: type[Intent]) -> None:
    hints = typing.get_type_hints(cls)
    own = [f for f in fields(cls)]
    names = tuple(f.name for f in own)
    decoders = tuple(_decoder(f.name, hints[f.name]) for f in own)
    required = sum(
        1
        for f in own
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    defaults = tuple(
        _encode_value(f.default) if f.default is not dataclasses.MISSING else None for f in own
    )
    _KINDS[cls.PREFIX] = _Kind(cls, names, decoders, required, defaults, _getter(names))


def _getter(names: tuple[str, ...]) -> Callable[[Intent], tuple[Any, ...]]:
    """The values of an intent's fields named `names`, in order, in one call."""
    if len(names) > 1:
        return operator.attrgetter(*names)
    if names:
        one = operator.attrgetter(names[0])
        return lambda intent: (one(intent),)
    return lambda intent: ()


for _cls in (
    MenuIntent,
    LinkIntent,
    ConsentIntent,
    ProfileIntent,
    ListIntent,
    AppIntent,
    FacetIntent,
    NotifyIntent,
    BulkIntent,
):
    _register(_cls)

_HEAD = re.compile(r"^([a-z]+)(\d*)$")


def encode(intent: Intent) -> str:
    """The payload of a button carrying `intent`; trailing default values are left out."""
    kind = _KINDS[intent.PREFIX]
    values = [_encode_value(value) for value in kind.values(intent)]
    defaults = kind.defaults
    while len(values) > kind.required and values[-1] == defaults[len(values) - 1]:
        values.pop()
    payload = SEPARATOR.join([f"{intent.PREFIX}{VERSION}", *values])
    if len(payload.encode()) > PAYLOAD_LIMIT:
        raise ValueError(f"the payload of {intent!r} is longer than {PAYLOAD_LIMIT} bytes")
    return payload


def decode(payload: str | None) -> Intent | None:
    """The intent of a pressed button; None for anything not one of ours."""
    if not payload or len(payload.encode()) > 4 * PAYLOAD_LIMIT:
        return None
    head, *values = payload.split(SEPARATOR)
    match = _HEAD.fullmatch(head)
    if match is None:
        return None
    kind = _KINDS.get(match.group(1))
    version = int(match.group(2) or 1)
    if kind is None or version < 1 or len(values) < kind.required:
        return None
    try:
        decoded = {
            name: decoder(raw)
            for name, decoder, raw in zip(kind.names, kind.decoders, values, strict=False)
        }
    except Malformed:
        return None
    return kind.cls(**decoded)


def as_intent(payload: str, expected: type[IntentT]) -> IntentT | None:
    """The decoded intent if it is of the expected kind."""
    intent = decode(payload)
    return intent if isinstance(intent, expected) else None


__all__ = [
    "VERSION",
    "AppAction",
    "AppIntent",
    "BulkAction",
    "BulkIntent",
    "ConsentAction",
    "ConsentIntent",
    "Facet",
    "FacetAction",
    "FacetIntent",
    "Intent",
    "LinkAction",
    "LinkIntent",
    "ListAction",
    "ListFilter",
    "ListIntent",
    "MenuAction",
    "MenuIntent",
    "NotifyAction",
    "NotifyIntent",
    "ProfileAction",
    "ProfileIntent",
    "StatusCode",
    "decode",
    "encode",
]
