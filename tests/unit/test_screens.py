"""Every screen and every push, built from plain data (tests/screens_data.py), stays within
both messengers' limits: at most 4,000 characters of text as counted (UTF-16 units, tags and
escapes included), buttons within the keyboards' limits, callback payloads within Telegram's 64
bytes that decode to the intent they carry. Laying them out needs no aiogram: a fresh
interpreter builds them all and has not imported it."""

from __future__ import annotations

import inspect

import pytest

from bot.conversation.intents import PAYLOAD_LIMIT, decode, encode
from bot.screens.markup import TEXT_LIMIT, length, plain
from bot.screens.screen import limits_problems
from tests.processes import fresh_python
from tests.screens_data import LAYOUT_MODULES, PUSH_KINDS, Built, every_screen

BUILT = every_screen()


def layouts() -> set[str]:
    """The public functions of the layout modules that return a Screen."""
    return {
        f"{module.__name__}.{name}"
        for module in LAYOUT_MODULES
        for name, function in inspect.getmembers(module, inspect.isfunction)
        if function.__module__ == module.__name__
        and not name.startswith("_")
        and inspect.signature(function).return_annotation in ("Screen", "Screen | None")
    }


def test_every_layout_and_every_push_kind_is_built() -> None:
    assert layouts() - {built.layout for built in BUILT} == set()
    assert set(PUSH_KINDS) - {built.kind for built in BUILT} == set()
    assert len(BUILT) > 500


def problems(built: Built) -> list[str]:
    """What is wrong with one built screen: nothing, for a screen within every limit."""
    screen = built.screen
    if screen is None:
        return [f"not built: {built.problem}"]
    found = limits_problems(screen)
    if length(screen.text) > TEXT_LIMIT or not plain(screen.text).strip():
        found.append(f"text of {length(screen.text)} units")
    for button in screen.buttons():
        if not button.label.strip():
            found.append("a button without a label")
        if button.intent is None:
            continue
        payload = encode(button.intent)
        if len(payload.encode()) > PAYLOAD_LIMIT:
            found.append(f"payload {payload!r} over {PAYLOAD_LIMIT} bytes")
        if decode(payload) != button.intent:
            found.append(f"payload {payload!r} decodes to {decode(payload)!r}")
    return found


@pytest.mark.parametrize("layout", sorted({built.layout for built in BUILT}))
def test_within_the_limits(layout: str) -> None:
    cases = [built for built in BUILT if built.layout == layout]
    assert {built.case: problems(built) for built in cases if problems(built)} == {}


def test_the_largest_data_reaches_the_limits() -> None:
    """The largest set of data is large: the card and the history are cut to fit, and the
    payloads are the longest the screens make (so the checks above test something)."""
    largest = [b for b in BUILT if b.case.startswith("largest") and b.screen is not None]
    assert max(length(built.screen.text) for built in largest) > TEXT_LIMIT * 3 // 4
    payloads = [
        len(encode(button.intent).encode())
        for built in largest
        for button in built.screen.buttons()
        if button.intent is not None
    ]
    assert max(payloads) > PAYLOAD_LIMIT * 2 // 3


def test_building_every_screen_imports_no_aiogram() -> None:
    code = (
        "import sys\n"
        "from tests.screens_data import every_screen\n"
        "built = every_screen()\n"
        "loaded = sorted(name for name in sys.modules if name.split('.')[0] == 'aiogram')\n"
        "print(len(built), loaded[:5])\n"
    )
    assert fresh_python(code).split() == [str(len(BUILT)), "[]"]
