"""Screens of bulk approval: the list's buttons, picking several, the confirmation naming the
count and the applicants, the one comment for all, and the result."""

from __future__ import annotations

from dataclasses import replace

from bot.conversation.intents import BulkAction, BulkIntent, ListAction, ListFilter, ListIntent
from bot.screens.applications import back_to_menu, pager
from bot.screens.markup import escape, shorten
from bot.screens.pieces import or_not_set, short_name
from bot.screens.screen import Button, Row, Screen
from bot.texts import bulk as t
from bot.texts import export as export_texts
from services.queries import Page
from services.views import ApplicationView

LIMIT = 500  # applications one bulk approval takes at most


def back_to_list(search: bool) -> Button:
    return Button(t.BUTTON_BACK, ListIntent(status_filter=ListFilter.NEW, search=search))


def with_bulk_buttons(screen: Screen, count: int, search: bool) -> Screen:
    """The director's «Не обработана» list with «✅ Одобрить все (N)» (of more than LIMIT:
    «✅ Одобрить первые 500», what the confirmation takes) and «☑️ Выбрать несколько», above
    the way back to the menu."""
    label = (
        t.BUTTON_ALL.format(count=count) if count <= LIMIT else t.BUTTON_FIRST.format(count=LIMIT)
    )
    row = (
        Button(label, BulkIntent(BulkAction.ALL, search=search)),
        Button(t.BUTTON_PICK, BulkIntent(BulkAction.PICK, search=search)),
    )
    rows = (*screen.rows[:-1], row, screen.rows[-1]) if screen.rows else (row,)
    return replace(screen, rows=rows)


def with_export_button(screen: Screen, shown: ListIntent) -> Screen:
    """«📤 Выгрузить» above the way back to the menu: the list as it is filtered."""
    export = replace(shown, action=ListAction.EXPORT, page=0)
    row = (Button(export_texts.BUTTON_EXPORT, export),)
    rows = (*screen.rows[:-1], row, screen.rows[-1]) if screen.rows else (row,)
    return replace(screen, rows=rows)


def row_text(item: ApplicationView) -> str:
    return t.CONFIRM_ROW.format(
        number=item.number,
        applicant=shorten(short_name(item.applicant_name), t.ROW_APPLICANT_LIMIT),
        program=shorten(or_not_set(item.program), t.ROW_PROGRAM_LIMIT),
    )


def picker(page: Page[ApplicationView], picked: set[int], search: bool) -> Screen:
    """A page of the list, each row picks or unpicks its application."""
    lines = [t.PICK_TITLE.format(picked=len(picked))]
    if page.pages > 1:
        lines.append(t.PICK_PAGE.format(page=page.index + 1, pages=page.pages))
    keyboard: list[Row] = []
    for item in page.items:
        mark = t.PICKED_MARK if item.number in picked else t.UNPICKED_MARK
        toggle = BulkIntent(BulkAction.TOGGLE, item=item.number, page=page.index, search=search)
        keyboard.append((Button(shorten(mark + row_text(item), 60), toggle),))
    navigation = pager(
        page.index,
        page.pages,
        lambda index: BulkIntent(BulkAction.PAGE, page=index, search=search),
    )
    if navigation:
        keyboard.append(navigation)
    if picked:
        confirm = BulkIntent(BulkAction.PICKED, search=search)
        keyboard.append((Button(t.BUTTON_PICKED.format(count=len(picked)), confirm),))
    keyboard.append((back_to_list(search),))
    return Screen("\n".join(lines), tuple(keyboard))


def numbers_text(numbers: list[int]) -> str:
    shown = ", ".join(f"№{n}" for n in numbers[: t.NUMBERS_SHOWN])
    return shown + (", …" if len(numbers) > t.NUMBERS_SHOWN else "")


def confirmation(
    items: list[ApplicationView], excluded: list[int], search: bool, *, total: int = 0
) -> Screen:
    """What «Одобрить» will approve; `total`: how many the list had, when more than LIMIT."""
    lines = [t.CONFIRM_TITLE.format(count=len(items)), ""]
    if total > LIMIT:
        lines += [t.CONFIRM_FIRST.format(limit=LIMIT, total=total), ""]
    lines += [escape(row_text(item)) for item in items[: t.CONFIRM_SHOWN]]
    if len(items) > t.CONFIRM_SHOWN:
        lines.append(t.CONFIRM_MORE.format(count=len(items) - t.CONFIRM_SHOWN))
    if excluded:
        lines += ["", t.CONFIRM_EXCLUDED.format(numbers=numbers_text(excluded))]
    lines += ["", t.CONFIRM_HINT]
    return Screen(
        "\n".join(lines),
        (
            (Button(t.BUTTON_WITHOUT_COMMENT, BulkIntent(BulkAction.APPROVE, search=search)),),
            (Button(t.BUTTON_WITH_COMMENT, BulkIntent(BulkAction.COMMENT, search=search)),),
            (back_to_list(search),),
        ),
    )


def comment_prompt(count: int, search: bool) -> Screen:
    return Screen(
        t.COMMENT_PROMPT.format(count=count),
        (
            (
                Button(t.BUTTON_NO_COMMENT, BulkIntent(BulkAction.APPROVE, search=search)),
                Button(t.BUTTON_ABORT, ListIntent(status_filter=ListFilter.NEW, search=search)),
            ),
        ),
    )


def result(approved: int, already: list[int], refused: list[int]) -> str:
    """«Одобрено 14; уже обработаны 2: №39746, №39750»."""
    parts = [t.RESULT.format(approved=approved)]
    for numbers, what in ((already, t.RESULT_ALREADY), (refused, t.RESULT_REFUSED)):
        if numbers:
            parts.append(
                t.RESULT_NUMBERS.format(what=what(len(numbers)), numbers=numbers_text(numbers))
            )
    return "; ".join(parts)


def nothing(search: bool, text: str) -> Screen:
    return Screen(text, ((back_to_list(search),), (back_to_menu(),)))
