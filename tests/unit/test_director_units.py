"""The pure parts of the application screens: search parsing, cutting texts, callback data sizes
(visibility and paging on a database are in tests/integration/test_screen_queries.py)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.conversation.intents import (
    AppAction,
    AppIntent,
    ListAction,
    ListFilter,
    ListIntent,
    StatusCode,
    decode,
)
from bot.screens.markup import ELLIPSIS, cost, fit, shorten, utf16_length
from bot.screens.pieces import short_name
from services.domain import Actor, Role, Status
from services.queries import parse_search
from tests.director_data import largest_card_press

ACCOUNTS = {1: (10, {"director", "listener"}), 2: (10, {"director"}), 3: (10, {"listener"})}
ACCOUNTS |= {5: (20, {"director"}), 6: (20, {"listener"}), 7: (None, {"staff"})}


def actors() -> list[Actor]:
    """Every account in every role, held or not (an active role taken away meanwhile)."""
    return [
        Actor(account, f"Человек {account}", role, frozenset(Role(r) for r in roles), org)
        for (account, (org, roles)), role in itertools.product(ACCOUNTS.items(), Role)
    ]


@pytest.mark.parametrize(
    ("text", "number", "name"),
    [
        ("39744", 39744, None),
        ("№39744", 39744, None),
        ("№ 39744", 39744, None),
        ("  #39744 ", 39744, None),
        ("Войсковая", None, "Войсковая"),
        ("  Войсковая   Юлия ", None, "Войсковая Юлия"),
        ("39744 Войсковая", None, "39744 Войсковая"),
        ("1" * 19, None, "1" * 19),  # beyond any application number: a text
    ],
)
def test_parse_search(text: str, number: int | None, name: str | None) -> None:
    search = parse_search(text)
    assert search is not None
    assert (search.number, search.name) == (number, name)


def test_parse_search_of_nothing() -> None:
    assert parse_search("   ") is None
    assert parse_search("я" * 500) == parse_search("я" * 100)


# Text as it comes: Cyrillic, and emoji beyond the BMP, which Telegram counts as 2 units each.
TEXT = st.text(st.sampled_from("яЁ a<&📥👩\u200d🏫🇷🇺✅"), max_size=300) | st.text(max_size=300)


@given(TEXT, st.integers(min_value=1, max_value=300))
def test_shorten_keeps_the_limit_and_marks_the_cut(value: str, limit: int) -> None:
    cut = shorten(value, limit)
    assert cost(cut) <= limit  # escaped, in UTF-16 code units
    assert cut == value or (cut.endswith(ELLIPSIS) and value.startswith(cut[:-1].rstrip()))


def test_shorten_counts_emoji_as_telegram_does() -> None:
    assert utf16_length("📥 Заявки") == 9
    assert shorten("📥📥📥📥", 8) == "📥📥📥📥"
    assert shorten("📥📥📥📥", 7) == "📥📥📥…"
    assert shorten("📥📥📥📥", 6) == "📥📥…"  # an emoji is never cut in half
    assert shorten("я📥📥", 4) == "я📥…"
    assert shorten("я📥📥", 3) == "я…"  # not «я» and half an emoji


@given(st.lists(TEXT, max_size=12), st.integers(min_value=0, max_value=3000))
def test_fit_keeps_the_budget_cutting_the_longest_values(values: list[str], budget: int) -> None:
    cut = fit(values, budget)
    if sum(map(cost, values)) <= budget:
        assert cut == values
        return
    assert sum(map(cost, cut)) <= budget
    whole = [cost(v) for v, c in zip(values, cut, strict=True) if c == v]
    shortened = [cost(v) for v, c in zip(values, cut, strict=True) if c != v]
    assert max(whole, default=0) <= min(shortened)  # the longest are cut, never a shorter one


def test_short_name() -> None:
    assert short_name("Войсковая Юлия Олеговна") == "Войсковая Ю. О."
    assert short_name("Войсковая") == "Войсковая"
    assert short_name("") == ""


def test_callback_data_fits_telegrams_64_bytes_at_its_largest() -> None:
    largest = largest_card_press(AppAction.CANCEL_CONFIRMED, StatusCode.CANCELLED)
    assert len(largest.pack().encode()) <= 64
    listing = ListIntent(action=ListAction.SEARCH, status_filter=ListFilter.ALL, page=100_000)
    assert len(listing.pack().encode()) <= 64
    for status in Status:
        assert StatusCode.of(status).status is status
    assert decode(AppIntent(action=AppAction.OPEN, number=5).pack()).status is None


def test_a_card_keeps_its_list() -> None:
    card = AppIntent(
        action=AppAction.OPEN,
        number=39744,
        status_filter=ListFilter.CANCELLED,
        list_page=2,
        search=True,
    )
    assert card.to(AppAction.HISTORY, page=3).back_to_list() == ListIntent(
        status_filter=ListFilter.CANCELLED, page=2, search=True
    )
