"""Bulk approval on the director's «Не обработана» list: «✅ Одобрить все (N)» or picking
several; a confirmation naming the count and the applicants; an optional single comment; then
each application through the same race-safe decision (services.applications.approve_many).

What the confirmation named is kept in the conversation's state (never in a payload), so the
approval acts on exactly those applications; one that someone else processed meanwhile is
reported, not approved.
"""

from __future__ import annotations

from bot.conversation.applications import actor_of, list_screen, own_decisions, refuse
from bot.conversation.intents import BulkAction, BulkIntent, ListFilter, ListIntent
from bot.conversation.state import Input
from bot.conversation.turn import Turn
from bot.screens import bulk as screens
from bot.screens.bulk import LIMIT
from bot.screens.markup import escape
from bot.screens.menu import message
from bot.texts import applications as app_texts
from bot.texts import bulk as t
from services.applications import approve_many, comment_problem, normalize_comment
from services.domain import Action, Role, Status, own_decision_refusal
from services.queries import PAGE_SIZE, Page, list_rows, parse_search
from services.views import ApplicationView

PICKED = "picked"
CONFIRMED = "bulk"


async def candidates(
    turn: Turn, search: bool, *, page: int = 0, size: int = LIMIT
) -> Page[ApplicationView]:
    """The director's «Не обработана» list as it is shown (with the last search if `search`)."""
    query = turn.state.search if search else None
    parsed = parse_search(query) if query is not None else None
    return await list_rows(
        turn.repo, actor_of(turn), status=Status.NEW, search=parsed, page=page, size=size
    )


async def picked_items(turn: Turn, picked: set[int], search: bool) -> list[ApplicationView]:
    """The picked applications still on the list, in its order: read LIMIT rows at a time, as
    far as the last one picked (it may lie beyond the first LIMIT)."""
    found: list[ApplicationView] = []
    index = 0
    while True:
        page = await candidates(turn, search, page=index)
        found += [item for item in page.items if item.number in picked]
        index += 1
        if len(found) == len(picked) or index >= page.pages:
            return found


def new_list(search: bool) -> ListIntent:
    return ListIntent(status_filter=ListFilter.NEW, search=search)


async def on_bulk(turn: Turn, pressed: BulkIntent) -> None:
    actor = actor_of(turn)
    if actor.role is not Role.DIRECTOR:
        refuse(turn, t.FOR_DIRECTORS)
        return
    action = pressed.action
    if action is BulkAction.ALL:
        page = await candidates(turn, pressed.search)
        await confirm(turn, list(page.items), pressed.search, total=page.total)
    elif action in (BulkAction.PICK, BulkAction.PAGE, BulkAction.TOGGLE):
        picked = set(turn.state.numbers(PICKED)) if action is not BulkAction.PICK else set()
        if action is BulkAction.TOGGLE:
            if pressed.item not in picked and len(picked) >= LIMIT:
                refuse(turn, t.PICK_LIMIT.format(limit=LIMIT))
                return
            picked ^= {pressed.item}
        turn.state.set_numbers(PICKED, sorted(picked))
        page = await candidates(turn, pressed.search, page=pressed.page, size=PAGE_SIZE)
        turn.reply.show(screens.picker(page, picked, pressed.search))
    elif action is BulkAction.PICKED:
        picked = set(turn.state.numbers(PICKED))
        if not picked:
            refuse(turn, t.NOTHING_PICKED)
            return
        await confirm(turn, await picked_items(turn, picked, pressed.search), pressed.search)
    elif action is BulkAction.COMMENT:
        numbers = turn.state.numbers(CONFIRMED)
        if not numbers:
            await gone(turn, pressed.search)
            return
        turn.reply.show(screens.comment_prompt(len(numbers), pressed.search))
        turn.state.begin(Input.BULK_COMMENT, prompt=turn.origin, back=new_list(pressed.search))
    else:
        await approve(turn, None, pressed.search)


async def confirm(
    turn: Turn, items: list[ApplicationView], search: bool, *, total: int = 0
) -> None:
    """The confirmation: how many and whose (the first LIMIT of `total`, when the list has
    more); the director's own applications left out."""
    actor = actor_of(turn)
    allowed = own_decisions(turn)
    excluded = [
        item.number
        for item in items
        if own_decision_refusal(actor, Action.APPROVE, item.ref, self_decisions=allowed)
    ]
    items = [item for item in items if item.number not in excluded]
    if not items:
        turn.state.set_numbers(CONFIRMED, [])
        turn.reply.show(screens.nothing(search, t.NOTHING_TO_APPROVE))
        return
    turn.state.set_numbers(CONFIRMED, [item.number for item in items])
    turn.reply.show(screens.confirmation(items, excluded, search, total=total))


async def gone(turn: Turn, search: bool) -> None:
    refuse(turn, t.GONE)
    turn.reply.show(await list_screen(turn, new_list(search)))


async def comment_input(turn: Turn, text: str) -> None:
    """The one comment typed after «✍️ Одобрить с комментарием для всех»."""
    back = turn.state.back
    comment = normalize_comment(text)
    problem = comment_problem(Action.APPROVE, comment)
    if problem is not None:
        turn.reply.show(message(app_texts.FIX_AND_RESEND.format(problem=escape(problem))))
        return
    turn.reply.remove(turn.state.prompt)
    turn.state.end()
    await approve(turn, comment, back.search if back is not None else False)


async def approve(turn: Turn, comment: str | None, search: bool) -> None:
    """Each confirmed application through the same decision; the list after, with the result."""
    numbers = turn.state.numbers(CONFIRMED)
    turn.state.set_numbers(CONFIRMED, [])
    turn.state.set_numbers(PICKED, [])
    if not numbers:
        await gone(turn, search)
        return
    outcome = await approve_many(
        turn.repo,
        actor_of(turn),
        numbers,
        comment=comment,
        clock=turn.clock,
        decisions_webhook=turn.settings.decisions_webhook,
        self_decisions=own_decisions(turn),
    )
    refused = [number for number, _ in outcome.refused]
    note = screens.result(len(outcome.approved), outcome.already_processed, refused)
    turn.reply.notice(t.RESULT_TOAST.format(approved=len(outcome.approved)))
    turn.reply.show(await list_screen(turn, new_list(search), escape(note)))
