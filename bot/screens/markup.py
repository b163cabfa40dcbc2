"""The text markup every messenger renders: bold, italic and links, nothing else.

A screen's text is a string in a small subset of HTML (`<b>`, `<i>`, `<a href="…">`, and the
entities `&amp;` `&lt;` `&gt;` `&quot;`): Telegram's HTML parse mode and MAX's `html` format both
render it as it is. Values go in through `escape`; the tags come only from the helpers here
and the text catalogue, so a name or a comment can never open a tag.

Lengths are counted as the stricter of the messengers does: in UTF-16 code units (Telegram's
4096 are code units: an emoji outside the Basic Multilingual Plane counts two), of the text as
sent, tags and escapes included (MAX's 4000), so a screen within TEXT_LIMIT fits both.
"""

from __future__ import annotations

import html
import re

TEXT_LIMIT = 4000  # the smaller of Telegram's 4096 and MAX's 4000
ELLIPSIS = "…"
TAGS = re.compile(r"</?(?:b|i|a)(?:\s[^>]*)?>")
# What costs more than one code unit in a text: what `escape` escapes, and a character outside
# the Basic Multilingual Plane (two UTF-16 code units).
_COSTLY = re.compile('[&<>"\U00010000-\U0010ffff]')


def utf16_length(text: str) -> int:
    """Length in UTF-16 code units, as Telegram counts it."""
    return len(text.encode("utf-16-le")) // 2


def escape(value: object) -> str:
    """A value as markup text: `&`, `<`, `>` and `"` escaped."""
    return html.escape(str(value), quote=True).replace("&#x27;", "'")


def bold(markup: str) -> str:
    return f"<b>{markup}</b>"


def italic(markup: str) -> str:
    return f"<i>{markup}</i>"


def link(url: str, markup: str) -> str:
    return f'<a href="{escape(url)}">{markup}</a>'


def length(markup: str) -> int:
    """The length of a text as sent (tags and escapes included), in UTF-16 code units."""
    return utf16_length(markup)


def plain(markup: str) -> str:
    """The text a reader sees: tags removed, entities decoded."""
    return html.unescape(TAGS.sub("", markup))


def cost(value: str) -> int:
    """What a plain value costs once escaped into a text."""
    return utf16_length(escape(value))


def shorten(value: str, limit: int) -> str:
    """Cut plain text so that, escaped, it costs at most `limit`; a cut ends with «…».

    Cut before escaping, so a cut never splits an entity or a tag, nor a surrogate pair. The
    cost of a prefix grows with its length: the longest prefix that fits is found by halving
    (a list's rows are cut on every screen; measuring character by character was a tenth of
    a list update's time, docs/BENCHMARKS.md).
    """
    if cost(value) <= limit:
        return value
    if limit <= 0:
        return ""
    budget = limit - 1  # the ellipsis
    if not _COSTLY.search(value):  # each character costs one: the prefix is `budget` long
        return value[:budget].rstrip() + ELLIPSIS
    fits, too_long = 0, len(value)  # cost(value[:fits]) <= budget < cost(value[:too_long])
    while too_long - fits > 1:
        middle = (fits + too_long) // 2
        if cost(value[:middle]) <= budget:
            fits = middle
        else:
            too_long = middle
    return value[:fits].rstrip() + ELLIPSIS


def fit(values: list[str], budget: int) -> list[str]:
    """Shorten the longest values first until, escaped, they fit `budget` together.

    Short values stay whole; the long ones are cut to one common cost, as long as possible.
    """
    costs = [cost(value) for value in values]
    if sum(costs) <= budget:
        return values
    remaining, cap = budget, 0
    ordered = sorted(costs)
    for position, value_cost in enumerate(ordered):
        share = remaining // (len(ordered) - position)
        if value_cost > share:
            cap = share
            break
        remaining -= value_cost
    return [shorten(value, cap) for value in values]


def one_line(value: str) -> str:
    """Whitespace (new lines included) folded into single spaces."""
    return " ".join(value.split())
