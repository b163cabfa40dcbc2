"""The pure parts of the applicant's and staff's screens: callback data and screens stay within
Telegram's limits (the query parts are in tests/integration/test_screen_queries.py)."""

from __future__ import annotations

from bot.conversation.intents import (
    AppAction,
    Facet,
    FacetAction,
    FacetIntent,
    ListFilter,
    StatusCode,
    decode,
)
from bot.screens import applications as screens
from services.queries import (
    Choice,
    Page,
)
from tests.director_data import largest_card_press
from tests.fakes.bot_api import parse_html


def test_callback_data_of_staff_fits_64_bytes_at_its_largest() -> None:
    facet = FacetIntent(
        action=FacetAction.CHOOSE,
        facet=Facet.ORGANIZATION,
        choice=-(2**63),
        page=100_000,
        status_filter=ListFilter.ALL,
        search=True,
        narrowed=True,
    )
    assert len(facet.pack().encode()) <= 64
    card = largest_card_press(AppAction.INCLUDE_NO_COMMENT, StatusCode.APPROVED, narrowed=True)
    assert len(card.pack().encode()) <= 64
    assert card.back_to_list().narrowed is True
    assert decode(facet.pack()) == facet


def test_choices_screen_numbers_across_pages_and_fits_telegrams_limit() -> None:
    long = "Программа «развития» & <компетенций> " * 100
    items = [Choice(key=1000 + i, name=f"{i} {long}", applications=i) for i in range(8)]
    page = Page(items=items, index=1, pages=3, total=20)
    shown = FacetIntent(action=FacetAction.CHOOSE, facet=Facet.PROGRAM, page=1, narrowed=True)
    screen = screens.facet_choices(
        Facet.PROGRAM,
        page,
        shown,
        current_choice=items[2].name,
        narrowed=screens.Narrowed(organization="О" * 600, program=items[2].name),
    )
    text, _ = parse_html(screen.text)  # as Telegram counts it: whole HTML, within 4096
    assert len(text) <= 4096
    assert "\n\n9. 0 Программа «развития» & <компетенций>" in text
    labels = [button.label for button in screen.buttons()]
    assert labels[0].startswith("9. 0 Программа")
    assert labels[0].endswith("… · 0")
    assert labels[2].startswith("• 11. 2 Программа")
    assert all(len(label) <= 60 for label in labels[:8])
    assert labels[8:] == ["◀", "2/3", "▶", "Все программы", "◀ К списку"]
