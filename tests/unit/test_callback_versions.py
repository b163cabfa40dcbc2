"""Old buttons survive: callback payloads carry the codec's version, a days-old push's buttons
(this code's, or the Telegram-only bot's aiogram CallbackData) still mean what they meant, and
adding a field to an intent never makes a valid button stale. Pure: no database, no aiogram."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import pytest

from bot.conversation import intents
from bot.conversation.intents import (
    VERSION,
    AppAction,
    AppIntent,
    ConsentAction,
    ConsentIntent,
    Facet,
    FacetAction,
    FacetIntent,
    Intent,
    LinkAction,
    LinkIntent,
    ListAction,
    ListFilter,
    ListIntent,
    MenuAction,
    MenuIntent,
    NotifyAction,
    NotifyIntent,
    ProfileAction,
    ProfileIntent,
    StatusCode,
    decode,
    encode,
)
from services.domain import Role

EVERY_KIND = [
    MenuIntent(MenuAction.APPLICATIONS),
    LinkIntent(LinkAction.SWITCH, token=17),
    ConsentIntent(ConsentAction.ACCEPT),
    ProfileIntent(ProfileAction.SET_ROLE, role=Role.DIRECTOR),
    ListIntent(ListAction.SHOW, ListFilter.ALL, page=3, search=True),
    AppIntent(AppAction.APPROVE, 39744),
    AppIntent(AppAction.HISTORY, 39744, page=2, status=StatusCode.NEW, narrowed=True),
    FacetIntent(FacetAction.SET, Facet.PROGRAM, choice=39001, status_filter=ListFilter.NEW),
    NotifyIntent(NotifyAction.DIGEST_OFF),
]


@pytest.mark.parametrize("intent", EVERY_KIND, ids=lambda intent: type(intent).__name__)
def test_every_payload_names_its_version_and_decodes_to_its_intent(intent: Intent) -> None:
    payload = encode(intent)
    assert payload.split(":")[0] == f"{intent.PREFIX}{VERSION}"
    assert decode(payload) == intent


@pytest.mark.parametrize(
    ("payload", "intent"),
    [
        # A push of today's bot: the decision buttons under a new application.
        ("a2:ap:39744", AppIntent(AppAction.APPROVE, 39744)),
        ("a2:c:39744", AppIntent(AppAction.CANCEL, 39744)),
        ("a2:o:39744", AppIntent(AppAction.OPEN, 39744)),
        # The Telegram-only bot's aiogram CallbackData: no version, every field written out.
        ("a:ap:39744:0::n:0:0:0", AppIntent(AppAction.APPROVE, 39744)),
        (
            "a:cy:39744:0:n:x:2:1:0",
            AppIntent(
                AppAction.CANCEL_CONFIRMED,
                39744,
                status=StatusCode.NEW,
                status_filter=ListFilter.ALL,
                list_page=2,
                search=True,
            ),
        ),
        ("m:a", MenuIntent(MenuAction.APPLICATIONS)),
        ("l:am:12", LinkIntent(LinkAction.ALLOW_MOVE, 12)),
        ("c:ok", ConsentIntent(ConsentAction.ACCEPT)),
        ("p:s:director", ProfileIntent(ProfileAction.SET_ROLE, Role.DIRECTOR)),
        ("al:s:n:0:0:0", ListIntent()),
        ("af:c:o:0:0:a:0:0", FacetIntent(FacetAction.CHOOSE, Facet.ORGANIZATION)),
        ("nt:m", NotifyIntent(NotifyAction.MUTE)),
    ],
)
def test_old_buttons_keep_their_meaning(payload: str, intent: Intent) -> None:
    assert decode(payload) == intent


def test_a_newer_replicas_payload_keeps_the_fields_this_code_knows() -> None:
    """During a rolling upgrade a newer replica's button (a later version, a field appended)
    reaches an older replica: it keeps what it knows instead of calling the button stale."""
    assert decode("a3:ap:39744:0::n:0:0:0:7") == AppIntent(AppAction.APPROVE, 39744)


@dataclasses.dataclass(frozen=True)
class Before(Intent):
    PREFIX: ClassVar[str] = "zz"
    action: AppAction
    number: int


@dataclasses.dataclass(frozen=True)
class After(Intent):
    """`Before` with a field appended, as a later release would add one."""

    PREFIX: ClassVar[str] = "zz"
    action: AppAction
    number: int
    page: int = 0


def test_appending_a_field_leaves_earlier_buttons_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(intents, "_KINDS", dict(intents._KINDS))
    intents._register(Before)
    old = Before(AppAction.APPROVE, 39744).pack()
    intents._register(After)
    assert decode(old) == After(AppAction.APPROVE, 39744, page=0)
    assert decode(After(AppAction.APPROVE, 39744, page=4).pack()) == After(
        AppAction.APPROVE, 39744, page=4
    )


@pytest.mark.parametrize(
    "payload",
    [
        "",
        "a2",  # the number is required
        "a0:ap:39744",  # no such version
        "a2:zz:39744",  # no such action
        "a2:ap:-5",  # out of range
        "q2:ap:39744",  # no such kind
        "A2:ap:39744",
        "a2:ap:39744:" + "0" * 300,  # longer than any payload of ours
    ],
)
def test_what_is_not_ours_decodes_to_nothing(payload: str) -> None:
    assert decode(payload) is None
