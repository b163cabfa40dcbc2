"""Russian plural forms for every text that shows a number: «1 новая», «2 новые», «5 новых».

One rule (as in CLDR for «ru»): the last digit 1 is «one» (1, 21, 101), 2–4 is «few» (2, 22,
104), everything else is «many» (0, 5–20, 25); 11–14 of every hundred are «many» (11, 112).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Form(Enum):
    ONE = "one"
    FEW = "few"
    MANY = "many"


def form(count: int) -> Form:
    """The plural form of a whole number (negative numbers take the form of their absolute
    value)."""
    count = abs(count)
    if count % 100 in (11, 12, 13, 14):
        return Form.MANY
    if count % 10 == 1:
        return Form.ONE
    if count % 10 in (2, 3, 4):
        return Form.FEW
    return Form.MANY


@dataclass(frozen=True)
class Plural:
    """A text with a number in three forms, each with `{count}` in it."""

    one: str
    few: str
    many: str

    def __call__(self, count: int) -> str:
        chosen = {Form.ONE: self.one, Form.FEW: self.few, Form.MANY: self.many}[form(count)]
        return chosen.format(count=count)


def plural(count: int, one: str, few: str, many: str) -> str:
    """The word for the number alone: plural(5, "заявка", "заявки", "заявок") -> «заявок»."""
    return Plural(one, few, many)(count)
