"""Applications for every role (steps 5-8 of the instruction): the list with filters, search and
pages; staff's filters by organisation and programme; the card; decisions (approve, include,
cancel) with a comment; comments; history; the deep link to a card.

One set of flows serves the director, the applicant and staff: what each may see and do comes
from the actor's role through services (queries.visible_view and list_rows,
domain.check / allowed_actions), decisions go through services.applications.perform_action,
and screens are laid out by bot.screens.applications from plain data loaded here. Every press
is checked again against the database: a card drawn before a restart, a push or a forged
button all meet the application as it is now.
"""

from __future__ import annotations

from dataclasses import replace

from bot.conversation.intents import (
    AppAction,
    AppIntent,
    Facet,
    FacetAction,
    FacetIntent,
    ListAction,
    ListFilter,
    ListIntent,
)
from bot.conversation.state import Input, Left
from bot.conversation.turn import Turn
from bot.screens import applications as screens
from bot.screens import bulk as bulk_screens
from bot.screens.export import workbook
from bot.screens.markup import escape, plain, shorten
from bot.screens.menu import message
from bot.screens.screen import Screen
from bot.texts import applications as t
from bot.texts import export as export_texts
from bot.texts.domain import refusal, role_label
from services.applications import (
    Done,
    LostRace,
    Outcome,
    Refused,
    comment_problem,
    normalize_comment,
    perform_action,
)
from services.domain import (
    Action,
    Actor,
    ApplicationRef,
    Reason,
    Role,
    Rule,
    allowed_actions,
    can_view,
    check,
    own_decision_refusal,
    rule_for,
)
from services.export import LIMIT as EXPORT_LIMIT
from services.export import export_list
from services.linking import ROLE_PRIORITY, switch_role
from services.queries import (
    Narrowing,
    choices,
    comments_page,
    history_page,
    list_rows,
    organization_name,
    parse_search,
    program_of,
    visible_view,
)
from services.views import ApplicationView, EventView, event_view, view_of
from storage.repositories import Grouping

ALERT_LIMIT = 200  # Telegram's callback answers; MAX's notifications are longer

# Card buttons that start a decision, and the «Без комментария» buttons that make one.
STARTS: dict[AppAction, Action] = {
    AppAction.APPROVE: Action.APPROVE,
    AppAction.INCLUDE: Action.INCLUDE,
    AppAction.CANCEL: Action.CANCEL,
    AppAction.CANCEL_CONFIRMED: Action.CANCEL,
}
CONFIRM_FIRST = {AppAction.CANCEL}  # asks «Отменить заявку?» before the comment
WITHOUT_COMMENT: dict[AppAction, Action] = {
    AppAction.APPROVE_NO_COMMENT: Action.APPROVE,
    AppAction.INCLUDE_NO_COMMENT: Action.INCLUDE,
    AppAction.CANCEL_NO_COMMENT: Action.CANCEL,
}


def own_decisions(turn: Turn) -> bool:
    """Whether a director may decide his own application (DIRECTOR_DECIDES_OWN)."""
    return turn.settings.DIRECTOR_DECIDES_OWN


def actor_of(turn: Turn) -> Actor:
    assert turn.actor is not None  # the dispatch lets only linked, consenting users here
    return turn.actor


def home_list(actor: Actor) -> ListIntent:
    """The list the main menu opens for the actor's role."""
    return screens.VIEWS[actor.role].home_list()


def refuse(turn: Turn, reason: str) -> None:
    """Refuse a press with the reason in an alert (Telegram takes at most 200 characters)."""
    turn.reply.alert(shorten(reason, ALERT_LIMIT))


# --- loading the screens' data -------------------------------------------------------------


def stored_narrowing(turn: Turn) -> Narrowing:
    """The organisation and programme the user chose for the list."""
    return Narrowing(organization_id=turn.state.organization, program=turn.state.program)


async def narrowed_names(turn: Turn, narrowing: Narrowing) -> screens.Narrowed:
    """The chosen organisation's name and programme, as the list's header shows them."""
    organization = None
    if narrowing.organization_id is not None:
        organization = await organization_name(turn.repo, narrowing.organization_id)
    return screens.Narrowed(organization=organization, program=narrowing.program)


async def list_screen(turn: Turn, shown: ListIntent, note: str | None = None) -> Screen:
    """The list as `shown` asks: `shown.search` applies the user's last search query,
    `shown.narrowed` the organisation and programme the user chose."""
    actor = actor_of(turn)
    query = turn.state.search if shown.search else None
    search = parse_search(query) if query is not None else None
    if search is None:
        shown = replace(shown, search=False)
    narrowing = stored_narrowing(turn) if shown.narrowed else Narrowing()
    if not narrowing.is_set:
        shown = replace(shown, narrowed=False)
    page = await list_rows(
        turn.repo,
        actor,
        status=shown.status_filter.status,
        search=search,
        narrowing=narrowing,
        page=shown.page,
    )
    screen = screens.application_list(
        page,
        shown,
        search.text if search else None,
        note,
        role=actor.role,
        narrowed=await narrowed_names(turn, narrowing),
    )
    if actor.role is Role.DIRECTOR and shown.status_filter is ListFilter.NEW and page.total:
        screen = bulk_screens.with_bulk_buttons(screen, page.total, shown.search)
    if actor.role in EXPORTS and page.total:
        screen = bulk_screens.with_export_button(screen, shown)
    return screen


EXPORTS = (Role.DIRECTOR, Role.STAFF)  # who may export a list («📤 Выгрузить»)


async def export(turn: Turn, shown: ListIntent) -> None:
    """«📤 Выгрузить»: the list as it is filtered, every page, as an .xlsx document; the list
    stays on screen."""
    actor = actor_of(turn)
    shown = replace(shown, action=ListAction.SHOW, page=0)
    if actor.role not in EXPORTS:
        refuse(turn, export_texts.FOR_ROLES)
        return
    query = turn.state.search if shown.search else None
    search = parse_search(query) if query is not None else None
    narrowing = stored_narrowing(turn) if shown.narrowed else Narrowing()
    exported = await export_list(
        turn.repo, actor, status=shown.status_filter.status, search=search, narrowing=narrowing
    )
    count = len(exported.applications)
    if not count:
        refuse(turn, export_texts.NOTHING)
        turn.reply.show(await list_screen(turn, shown))
        return
    header = await list_screen(turn, shown)
    filters = plain(header.text.split("\n\n", 1)[0]).replace("\n", ". ")
    caption = export_texts.CAPTION.format(count=count, filters=filters)
    if exported.truncated:
        caption += export_texts.CAPTION_TRUNCATED.format(limit=EXPORT_LIMIT)
    day = turn.clock.now().astimezone(turn.settings.zone).strftime("%Y-%m-%d")
    content = workbook(exported, turn.settings.zone)
    turn.reply.notice(export_texts.DONE.format(count=count))
    turn.reply.document(export_texts.FILE_NAME.format(day=day), content, caption[:1024])


async def card_screen(
    turn: Turn,
    application: ApplicationView,
    base: AppIntent | None = None,
    *,
    note: str | None = None,
    last_change: EventView | None = None,
    comments: int | None = None,
) -> Screen:
    """The card; `comments`, how many comments it has, if read with it already."""
    actor = actor_of(turn)
    repo = turn.repo
    if last_change is None and application.status.value != "new":
        # Who decided and when: a new application has had no decision to show.
        event = await repo.events.last_transition(application.number)
        last_change = event_view(event) if event is not None else None
    if base is None:
        base = screens.VIEWS[actor.role].home_card(application.number)
    if comments is None:
        comments = await repo.events.count_comments(application.number)
    return screens.application_card(
        application,
        actions=allowed_actions(actor, application.ref, self_decisions=own_decisions(turn)),
        last_change=last_change,
        comments=comments,
        zone=turn.settings.zone,
        base=base,
        note=note,
    )


async def comments_screen(
    turn: Turn,
    application: ApplicationView,
    base: AppIntent,
    *,
    page: int = 0,
    note: str | None = None,
) -> Screen:
    events = await comments_page(turn.repo, application.number, page)
    return screens.comments(
        application,
        events.map(event_view),
        screens.card_data(application, base=base),
        can_comment=Action.COMMENT in allowed_actions(actor_of(turn), application.ref),
        zone=turn.settings.zone,
        note=note,
    )


async def visible(turn: Turn, number: int) -> ApplicationView | None:
    """The application, fresh from the database, if the actor may see it."""
    return await visible_view(turn.repo, actor_of(turn), number)


async def load(turn: Turn, pressed: AppIntent) -> ApplicationView | None:
    """The pressed application if the actor may see it; otherwise the press is refused."""
    application = await visible(turn, pressed.number)
    if application is None:
        refuse(turn, t.NOT_VISIBLE.format(number=pressed.number))
    return application


def changed_since(shown: AppIntent, application: ApplicationView) -> str | None:
    """What changed since the screen with the pressed button was drawn, if anything."""
    if shown.status is None or shown.status.status is application.status:
        return None
    return screens.status_changed(shown.status.status, application.status)


# --- list and search -----------------------------------------------------------------------


async def open_home_list(turn: Turn) -> None:
    """«📥 Заявки» («📄 Мои заявки») in the main menu: the role's list, for a director the
    unprocessed applications first, as in the web module."""
    turn.reply.show(await list_screen(turn, home_list(actor_of(turn))))


async def on_list(turn: Turn, pressed: ListIntent) -> None:
    if pressed.action is ListAction.SEARCH:
        back = replace(pressed, action=ListAction.SHOW)
        turn.reply.show(screens.search_prompt(back))
        turn.state.begin(Input.SEARCH, prompt=turn.origin, back=back)
        return
    if pressed.action is ListAction.EXPORT:
        await export(turn, pressed)
        return
    if pressed.action is ListAction.FIND_HELD:
        held = turn.state.held
        turn.state.drop_held()
        if held is None:
            refuse(turn, t.HELD_GONE)
            turn.reply.show(await list_screen(turn, home_list(actor_of(turn))))
            return
        await search(turn, held.text)
        return
    if pressed.action is ListAction.CLEAR:
        turn.state.set_search(None)
        pressed = ListIntent(status_filter=pressed.status_filter, narrowed=pressed.narrowed)
    turn.reply.show(await list_screen(turn, pressed))


async def search_input(turn: Turn, text: str) -> None:
    """The text after «🔍 Поиск»: the search keeps the organisation and programme chosen."""
    back = turn.state.back
    turn.reply.remove(turn.state.prompt)
    turn.state.end()
    await search(turn, text, narrowed=back is not None and back.narrowed)


async def search(turn: Turn, text: str, narrowed: bool = False, note: str | None = None) -> None:
    """A search: a number opens that card, a name lists matches (`note` on top of the list)."""
    actor = actor_of(turn)
    query = parse_search(text)
    if query is None:
        turn.reply.show(await list_screen(turn, home_list(actor), note))
        return
    if query.number is not None:
        application = await visible(turn, query.number)
        if application is not None:
            turn.reply.show(await card_screen(turn, application))
            return
    turn.state.set_search(query.text)
    shown = ListIntent(status_filter=ListFilter.ALL, search=True, narrowed=narrowed)
    turn.reply.show(await list_screen(turn, shown, note))


# --- staff's filters ------------------------------------------------------------------------


def narrowing_of(turn: Turn, shown: FacetIntent) -> Narrowing:
    """What the list the choice applies to is narrowed to now."""
    return stored_narrowing(turn) if shown.narrowed else Narrowing()


async def choices_screen(turn: Turn, shown: FacetIntent) -> Screen:
    actor = actor_of(turn)
    narrowing = narrowing_of(turn, shown)
    shown = replace(shown, action=FacetAction.CHOOSE, narrowed=narrowing.is_set)
    status = shown.status_filter.status
    current: int | str | None
    by: Grouping = "organization" if shown.facet is Facet.ORGANIZATION else "program"
    page = await choices(turn.repo, actor, by, status=status, narrowing=narrowing, page=shown.page)
    current = narrowing.organization_id if by == "organization" else narrowing.program
    narrowed = await narrowed_names(turn, narrowing)
    return screens.facet_choices(
        shown.facet, page, shown, current_choice=current, narrowed=narrowed
    )


async def on_facet(turn: Turn, pressed: FacetIntent) -> None:
    """«🏫 Организация» / «📚 Программа»: the organisations (programmes) that have such
    applications; a choice narrows the list, «Все …» widens it again."""
    if pressed.action is FacetAction.CHOOSE:
        turn.reply.show(await choices_screen(turn, pressed))
        return
    narrowing = narrowing_of(turn, pressed)
    if pressed.action is FacetAction.SET:
        key = pressed.choice
        if pressed.facet is Facet.ORGANIZATION:
            found = await organization_name(turn.repo, key) is not None
            narrowing = replace(narrowing, organization_id=key)
        else:
            program = await program_of(turn.repo, actor_of(turn), key)
            found = program is not None
            narrowing = replace(narrowing, program=program)
        if not found:
            refuse(turn, t.FACET_GONE[pressed.facet])
            turn.reply.show(await choices_screen(turn, pressed))
            return
    elif pressed.facet is Facet.ORGANIZATION:
        narrowing = replace(narrowing, organization_id=None)
    else:
        narrowing = replace(narrowing, program=None)
    turn.state.set_narrowing(narrowing.organization_id, narrowing.program)
    shown = ListIntent(
        status_filter=pressed.status_filter, search=pressed.search, narrowed=narrowing.is_set
    )
    turn.reply.show(await list_screen(turn, shown))


# --- card and decisions --------------------------------------------------------------------


async def open_card_by_link(turn: Turn, number: int) -> None:
    """/start app_<number>: the deep link to a card, for anyone whose role may see it."""
    application = await visible(turn, number)
    if application is None:
        turn.reply.show(message(t.NOT_VISIBLE.format(number=number), menu=True))
        return
    turn.reply.show(await card_screen(turn, application))


# What each press needs the actor's role to allow (None: seeing the application is enough).
NEEDS: dict[AppAction, Action | None] = {
    **STARTS,
    **WITHOUT_COMMENT,
    AppAction.ADD_COMMENT: Action.COMMENT,
}


def role_for(
    actor: Actor, pressed: AppIntent, application: ApplicationRef, *, self_decisions: bool = False
) -> Role | None:
    """Another of the person's roles the press belongs to, if the active one cannot take it:
    a push or a card sent for one role, pressed after a switch to another. The first, in the
    order a binding starts in, that may see the application and has a rule for the action
    (not a director's decision on his own application, unless allowed)."""
    needed = NEEDS.get(pressed.action)

    def fits(role: Role) -> bool:
        acting = replace(actor, role=role)
        return can_view(acting, application) and (
            needed is None
            or (
                rule_for(needed, role) is not None
                and own_decision_refusal(acting, needed, application, self_decisions=self_decisions)
                is None
            )
        )

    if fits(actor.role):
        return None
    return next((role for role in ROLE_PRIORITY if role in actor.roles and fits(role)), None)


async def load_in_its_role(turn: Turn, pressed: AppIntent) -> tuple[ApplicationView, int] | None:
    """The pressed application, with how many comments it has (its card shows that), in the
    role the button was made for: if the active role cannot take the press but another of the
    person's roles can, that role becomes active and the person is told so (the chat's
    commands follow). None if no role may see it."""
    _, actor = turn.linked()
    found = await turn.repo.applications.view_row(pressed.number, comments=True)
    if found is None:
        return None
    needed = NEEDS.get(pressed.action)
    application, comments = view_of(found), int(found["comments"])
    if can_view(actor, application.ref) and (
        needed is None or rule_for(needed, actor.role) is not None
    ):
        return application, comments
    role = role_for(actor, pressed, application.ref, self_decisions=own_decisions(turn))
    switched = switch_role(await turn.for_change(), role) if role is not None else None
    if switched is None:
        return (application, comments) if can_view(actor, application.ref) else None
    turn.actor = switched
    turn.reply.notice(t.ROLE_SWITCHED_FOR_PRESS.format(role=role_label(switched.role)))
    turn.reply.commands(switched.role)
    return application, comments


async def on_app(turn: Turn, pressed: AppIntent) -> None:
    """A press on a card, a prompt, a push: by its action, in the role it was made for."""
    found = await load_in_its_role(turn, pressed)
    if found is None:
        refuse(turn, t.NOT_VISIBLE.format(number=pressed.number))
        return
    application, comments = found
    action = pressed.action
    if action is AppAction.OPEN:
        note = changed_since(pressed, application)
        screen = await card_screen(turn, application, pressed, note=note, comments=comments)
        turn.reply.show(screen)
    elif action in STARTS:
        await start_decision(turn, pressed, application)
    elif action in WITHOUT_COMMENT:
        await decide_now(turn, pressed, WITHOUT_COMMENT[action], None)
    elif action is AppAction.ABORT:
        turn.reply.notice(t.INPUT_ABORTED)
        note = changed_since(pressed, application) or t.INPUT_ABORTED
        screen = await card_screen(turn, application, pressed, note=note, comments=comments)
        turn.reply.show(screen)
    elif action is AppAction.COMMENTS:
        turn.reply.show(await comments_screen(turn, application, pressed, page=pressed.page))
    elif action is AppAction.ADD_COMMENT:
        await ask_comment(turn, pressed, application)
    elif action is AppAction.USE_HELD:
        await use_held(turn, pressed, application)
    else:  # HISTORY
        page = await history_page(turn.repo, application.number, pressed.page)
        card = screens.card_data(application, base=pressed)
        events = page.map(event_view)
        turn.reply.show(screens.history(application, events, card, zone=turn.settings.zone))


async def refuse_on_card(
    turn: Turn, application: ApplicationView, base: AppIntent, reason: str
) -> None:
    """Say why a press changed nothing, and show the card as it is now."""
    refuse(turn, reason)
    turn.reply.show(await card_screen(turn, application, base, note=escape(reason)))


def own_refusal(turn: Turn, action: Action, application: ApplicationView) -> Reason | None:
    """For a director pressing a decision on his own application in another role (a push sent
    to him as a director): why no role of his may take it."""
    actor = actor_of(turn)
    if Role.DIRECTOR not in actor.roles:
        return None
    as_director = replace(actor, role=Role.DIRECTOR)
    return own_decision_refusal(
        as_director, action, application.ref, self_decisions=own_decisions(turn)
    )


async def start_decision(turn: Turn, pressed: AppIntent, application: ApplicationView) -> None:
    """«✅ Одобрить» and «👥 Включить в группу» ask for a comment; «❌ Отменить» asks to confirm,
    then for a reason."""
    actor = actor_of(turn)
    action = STARTS[pressed.action]
    changed = changed_since(pressed, application)
    verdict = check(actor, action, application.ref, self_decisions=own_decisions(turn))
    if changed is not None:
        await refuse_on_card(turn, application, pressed, changed)
        return
    if not isinstance(verdict, Rule):
        own = own_refusal(turn, action, application)
        await refuse_on_card(turn, application, pressed, refusal(own or verdict))
        return
    card = screens.card_data(application, base=pressed)
    if pressed.action in CONFIRM_FIRST:
        turn.reply.show(screens.cancel_confirmation(application, card, actor.role))
        return
    turn.reply.show(screens.decision_prompt(application, action, card, actor.role))
    turn.state.begin(Input.DECISION_COMMENT, prompt=turn.origin, card=card, decision=action)


async def decide_now(turn: Turn, card: AppIntent, action: Action, comment: str | None) -> None:
    """The decision, on the status the screen with the button was drawn for; the card after it."""
    outcome = await decide(turn, card, action, comment)
    if isinstance(outcome, Done):
        turn.reply.notice(t.DONE_TOAST[action])
    else:
        refuse(turn, outcome_reason(outcome))
    screen = await outcome_screen(turn, card, action, outcome, comment)
    if screen is None:  # the application is gone from the actor's sight meanwhile
        screen = message(escape(outcome_reason(outcome)), menu=True)
    turn.reply.show(screen)


def typed_comment(
    turn: Turn, text: str, action: Action | None
) -> tuple[AppIntent, str | None] | None:
    """The text typed after a prompt for `action` (a decision's comment, the reason of a
    cancellation, a comment), taken with the card it is for and the prompt removed; None when
    it cannot be taken: the input lost its card (said so, and ended) or the text needs fixing
    (said what, and the input goes on)."""
    card = turn.state.card
    if card is None or action is None:
        turn.state.end()
        turn.reply.show(message(t.INPUT_ABORTED))
        return None
    comment = normalize_comment(text)
    problem = comment_problem(action, comment)
    if problem is not None:
        turn.reply.show(message(t.FIX_AND_RESEND.format(problem=escape(refusal(problem)))))
        return None
    turn.reply.remove(turn.state.prompt)
    turn.state.end()
    return card, comment


async def decision_comment_input(turn: Turn, text: str) -> None:
    """The comment (or the reason of a cancellation) typed after the prompt."""
    action = turn.state.decision
    taken = typed_comment(turn, text, action)
    if taken is not None and action is not None:
        card, comment = taken
        await decide_now(turn, card, action, comment)


async def decide(turn: Turn, card: AppIntent, action: Action, comment: str | None) -> Outcome:
    """The decision through the domain core, expecting the status the screen showed; queued for
    the web module's webhook too when DPO_WEBHOOK_URL is set."""
    expected = card.status.status if card.status is not None else None
    return await perform_action(
        turn.repo,
        actor_of(turn),
        card.number,
        action,
        comment=comment,
        source=turn.source,
        expected_status=expected,
        clock=turn.clock,
        decisions_webhook=turn.settings.decisions_webhook,
        self_decisions=own_decisions(turn),
    )


def outcome_reason(outcome: LostRace | Refused | Done) -> str:
    """Why nothing changed: someone was first (and the status now), or the refusal."""
    return refusal(outcome.reason) if isinstance(outcome, LostRace | Refused) else ""


async def outcome_screen(
    turn: Turn, base: AppIntent, action: Action, outcome: Outcome, comment: str | None
) -> Screen | None:
    """The card after a decision: the new status with who decided and when, or, if nothing
    changed, the card as it is now with the reason on top."""
    if isinstance(outcome, Done):
        note = screens.done(
            action, outcome.application.number, comment is not None, actor_of(turn).role
        )
        return await card_screen(
            turn,
            outcome.application,
            base,
            note=note,
            last_change=event_view(outcome.event),
        )
    application = await visible(turn, base.number)
    if application is None:
        return None
    return await card_screen(turn, application, base, note=escape(outcome_reason(outcome)))


# --- comments ------------------------------------------------------------------------------


async def ask_comment(turn: Turn, pressed: AppIntent, application: ApplicationView) -> None:
    """«✍️ Написать комментарий»: the next text goes to the other side (services.notifications)."""
    actor = actor_of(turn)
    verdict = check(actor, Action.COMMENT, application.ref)
    if not isinstance(verdict, Rule):
        await refuse_on_card(turn, application, pressed, refusal(verdict))
        return
    card = screens.card_data(application, base=pressed)
    turn.reply.show(screens.comment_prompt(application, card, actor.role))
    turn.state.begin(Input.COMMENT, prompt=turn.origin, card=card)


async def comment_input(turn: Turn, text: str) -> None:
    taken = typed_comment(turn, text, Action.COMMENT)
    if taken is not None:
        await send_comment(turn, *taken)


async def send_comment(turn: Turn, card: AppIntent, comment: str | None) -> None:
    """The comment goes to the application's thread; the comments after it."""
    outcome = await perform_action(
        turn.repo,
        actor_of(turn),
        card.number,
        Action.COMMENT,
        comment=comment,
        source=turn.source,
        clock=turn.clock,
        decisions_webhook=turn.settings.decisions_webhook,
    )
    note = (
        screens.done(Action.COMMENT, card.number, True, actor_of(turn).role)
        if isinstance(outcome, Done)
        else escape(outcome_reason(outcome))
    )
    application = await visible(turn, card.number)
    if application is None:
        turn.reply.show(message(note, menu=True))
        return
    turn.reply.show(await comments_screen(turn, application, card, note=note))


# --- ending an input -----------------------------------------------------------------------


async def cancel_input(turn: Turn) -> None:
    """/cancel: abandon the pending input and show where it started; nothing changes."""
    pending, state = turn.state.input, turn.state
    if pending is None:
        turn.reply.show(message(t.NOTHING_TO_CANCEL))
        return
    card, back, prompt = state.card, state.back, state.prompt
    state.end()
    turn.reply.remove(prompt)
    actor = actor_of(turn)
    if pending in (Input.SEARCH, Input.BULK_COMMENT):
        shown = back or home_list(actor)
        note = t.SEARCH_ABORTED if pending is Input.SEARCH else t.INPUT_ABORTED
        turn.reply.show(await list_screen(turn, shown, note))
        return
    application = await visible(turn, card.number) if card else None
    if card is None or application is None:
        turn.reply.show(message(t.INPUT_ABORTED, menu=True))
        return
    if pending is Input.COMMENT:  # back where «Написать комментарий» was pressed
        screen = await comments_screen(turn, application, card, note=t.INPUT_ABORTED)
    else:
        screen = await card_screen(turn, application, card, note=t.INPUT_ABORTED)
    turn.reply.show(screen)


async def text_for_input(turn: Turn, text: str) -> None:
    """A text while an input waits: it is what the input asked for."""
    pending = turn.state.input
    if pending is Input.DECISION_COMMENT:
        await decision_comment_input(turn, text)
    elif pending is Input.COMMENT:
        await comment_input(turn, text)
    else:
        await search_input(turn, text)


def not_text(turn: Turn) -> None:
    turn.reply.show(message(t.TEXT_ONLY))


# --- a prompt no longer active, a text that came late, free text outside an input ----------

OFFER_SIZE = 5  # an applicant's newest applications offered for a comment


def leave_input(turn: Turn) -> None:
    """A press or a command while an input waits: the input is over. Its prompt, unless it is
    the pressed message (its own buttons answer it), is edited to say so; a comment's or a
    decision's input is remembered for the next update, so a text meant for it is not taken
    for something else."""
    state = turn.state
    pending, prompt, card, back = state.input, state.prompt, state.card, state.back
    if turn.origin is not None and turn.origin == prompt:
        state.end()
        return
    if pending in (Input.SEARCH, Input.BULK_COMMENT) or card is None:
        state.end()
        kind = "bulk" if pending is Input.BULK_COMMENT else "search"
        turn.reply.edit(prompt, screens.prompt_closed(kind, None, back))
        return
    kind = "comment" if pending is Input.COMMENT else "decision"
    state.leave()
    turn.reply.edit(prompt, screens.prompt_closed(kind, card, None))


def can_search(actor: Actor) -> bool:
    return screens.VIEWS[actor.role].search


async def late_text(turn: Turn, text: str, left: Left) -> None:
    """A text right after its prompt stopped being active: the person is told nothing was done
    and offered to use it for what the prompt asked."""
    action = left.decision if left.input is Input.DECISION_COMMENT else Action.COMMENT
    comment = normalize_comment(text)
    if action is None or comment is None:
        await free_text(turn, text)
        return
    problem = comment_problem(action, comment)
    if problem is not None:
        turn.reply.show(message(escape(problem), menu=True))
        return
    turn.state.hold(comment, action, left.card.number)
    actor = actor_of(turn)
    turn.reply.show(screens.late_text(left.card, action, comment, can_search=can_search(actor)))


async def free_text(turn: Turn, text: str) -> None:
    """A text outside any input: for those who search (directors, staff) a search, saying so;
    for an applicant an offer to send it as a comment on one of her applications."""
    actor = actor_of(turn)
    if can_search(actor):
        await search(turn, text, note=t.SEARCH_BY_TEXT)
    else:
        await offer_comment(turn, text)


async def offer_comment(turn: Turn, text: str) -> None:
    actor = actor_of(turn)
    query = parse_search(text)
    if query is not None and query.number is not None:  # a number opens her application
        application = await visible(turn, query.number)
        if application is None:
            turn.reply.show(message(t.NOT_VISIBLE.format(number=query.number), menu=True))
        else:
            turn.reply.show(await card_screen(turn, application))
        return
    comment = normalize_comment(text)
    problem = comment_problem(Action.COMMENT, comment)
    if problem is not None or comment is None:
        turn.reply.show(message(escape(problem or ""), menu=True))
        return
    page = await list_rows(turn.repo, actor, status=None, size=OFFER_SIZE)
    if not page.total:
        turn.reply.show(message(t.NO_OWN_APPLICATIONS, menu=True))
        return
    turn.state.hold(comment, Action.COMMENT, None)
    turn.reply.show(screens.offer_comment(comment, page))


async def use_held(turn: Turn, pressed: AppIntent, application: ApplicationView) -> None:
    """«✅ Одобрить с этим комментарием», «💬 Отправить комментарием»…: the kept text goes
    through the same decision (on the status the prompt was drawn for) or comment."""
    held = turn.state.held
    turn.state.drop_held()
    card = pressed.to(AppAction.OPEN)
    if held is None or (held.number is not None and held.number != pressed.number):
        await refuse_on_card(turn, application, card, t.HELD_GONE)
        return
    if held.action is Action.COMMENT:
        verdict = check(actor_of(turn), Action.COMMENT, application.ref)
        if not isinstance(verdict, Rule):
            await refuse_on_card(turn, application, card, refusal(verdict))
            return
        await send_comment(turn, card, held.text)
    else:
        await decide_now(turn, card, held.action, held.text)
