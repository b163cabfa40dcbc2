"""Application screens as pure functions of plain data: the list, staff's filters, the card,
decision prompts, comments and history.

Buttons follow the actions the domain allows the actor (services.domain.allowed_actions), so a
role sees only what it may press; what else differs between the roles' screens is the small
RoleView of each role (VIEWS). Over-long values are cut as plain text before escaping
(markup.shorten / markup.fit), so a screen stays within TEXT_LIMIT and its markup stays whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from zoneinfo import ZoneInfo

from bot.conversation.intents import (
    AppAction,
    AppIntent,
    Facet,
    FacetAction,
    FacetIntent,
    Intent,
    ListAction,
    ListFilter,
    ListIntent,
    MenuAction,
    MenuIntent,
    StatusCode,
)
from bot.screens.markup import escape, fit, shorten, utf16_length
from bot.screens.pieces import (
    actor_label,
    local_time,
    or_not_set,
    short_name,
    status_label,
    study_dates,
)
from bot.screens.screen import Button, Row, Screen
from bot.texts import MENU_BACK
from bot.texts import applications as t
from bot.texts.messengers import messenger_name
from services.domain import RULES, Action, Role, Status
from services.queries import CHOICES_PAGE_SIZE, Choice, Page
from services.views import ApplicationView, EventView


@dataclass(frozen=True)
class RoleView:
    """What differs between the roles' application lists; the rest follows the rules."""

    home: ListFilter  # the status filter of the list the main menu opens
    search: bool = True  # «🔍 Поиск» by name or number
    facets: bool = False  # filters by organisation and by programme
    applicant_column: bool = True  # the applicant's name in the list's rows
    decides: bool = True  # lists say what can be decided on them (not the applicant's own)

    def home_list(self) -> ListIntent:
        return ListIntent(status_filter=self.home)

    def home_card(self, number: int) -> AppIntent:
        """A card opened from outside a list (a search, a link): «◀ К списку» goes home."""
        return AppIntent(action=AppAction.OPEN, number=number, status_filter=self.home)


VIEWS: dict[Role, RoleView] = {
    # The director decides on the unprocessed applications of the organisation.
    Role.DIRECTOR: RoleView(home=ListFilter.NEW),
    # The applicant follows their own applications, whatever their status.
    Role.LISTENER: RoleView(
        home=ListFilter.ALL, search=False, applicant_column=False, decides=False
    ),
    # Staff include the applications directors approved, across organisations.
    Role.STAFF: RoleView(home=ListFilter.APPROVED, facets=True),
}

# The card's decision buttons in the order shown (the decision that moves the application on
# first), and what «Без комментария» sends after each.
DECISION_BUTTONS: dict[Action, AppAction] = {
    Action.APPROVE: AppAction.APPROVE,
    Action.INCLUDE: AppAction.INCLUDE,
    Action.CANCEL: AppAction.CANCEL,
}
WITHOUT_COMMENT: dict[Action, AppAction] = {
    Action.APPROVE: AppAction.APPROVE_NO_COMMENT,
    Action.INCLUDE: AppAction.INCLUDE_NO_COMMENT,
    Action.CANCEL: AppAction.CANCEL_NO_COMMENT,
}


@dataclass(frozen=True)
class Narrowed:
    """The organisation and programme a list is narrowed to, as shown (plain text)."""

    organization: str | None = None
    program: str | None = None


def back_to_menu() -> Button:
    return Button(MENU_BACK, MenuIntent(MenuAction.HOME))


def menu_only() -> tuple[Row, ...]:
    return ((back_to_menu(),),)


# --- pieces --------------------------------------------------------------------------------


def summary(application: ApplicationView) -> str:
    """One escaped line naming the application: applicant and programme."""
    line = t.SUMMARY.format(
        applicant=application.applicant_name, program=or_not_set(application.program)
    )
    return escape(shorten(line, t.SUMMARY_LIMIT))


def card_data(application: ApplicationView, *, base: AppIntent | None = None) -> AppIntent:
    """The intent of this card as now shown: its current status, the list it came from."""
    if base is None:
        return AppIntent(action=AppAction.OPEN, number=application.number).seen(application.status)
    return replace(
        base,
        action=AppAction.OPEN,
        page=0,
        number=application.number,
        status=StatusCode.of(application.status),
    )


def pager(index: int, pages: int, page_intent: Callable[[int], Intent]) -> Row:
    """◀ k/n ▶ for a paginated screen; the middle button redraws the page (a refresh)."""
    if pages <= 1:
        return ()
    row = []
    if index > 0:
        row.append(Button(t.BUTTON_PREVIOUS, page_intent(index - 1)))
    row.append(Button(t.BUTTON_PAGE.format(page=index + 1, pages=pages), page_intent(index)))
    if index < pages - 1:
        row.append(Button(t.BUTTON_NEXT, page_intent(index + 1)))
    return tuple(row)


def current(label: str, chosen: bool) -> str:
    """A filter's label, marked when it is the one in force."""
    return t.FILTER_CURRENT.format(label=label) if chosen else label


def status_changed(before: Status, after: Status) -> str:
    return t.STATUS_CHANGED.format(before=status_label(before), after=status_label(after))


def done(action: Action, number: int, with_comment: bool, role: Role) -> str:
    """What the actor in the role just did, and who hears of it."""
    return t.DONE[action].format(
        number=number,
        notified=t.NOTIFIED[role],
        comment=t.DONE_WITH_COMMENT if with_comment else "",
        sent_to=t.SENT_TO[role],
    )


def with_note(note: str | None, lines: list[str]) -> str:
    return "\n".join(([note, ""] if note else []) + lines)


# --- list ----------------------------------------------------------------------------------


def common_words(names: Sequence[str]) -> int:
    """How many leading characters, in whole words, every name shares with the others; the
    last shared word is kept, for the differing part to read on from it («…модуль 2»)."""
    shared = min((name.split(" ") for name in names), key=len)
    count = 0
    for index, word in enumerate(shared):
        if any(name.split(" ")[index] != word for name in names):
            break
        count += 1
    return len(" ".join(shared[: count - 1])) if count > 1 else 0


def row_subjects(items: Sequence[ApplicationView]) -> list[str]:
    """What a page's rows say of each application, so that they tell the applications apart
    within a row's few characters: of programmes that begin alike, the part that differs
    («…модуль 2»); and the group where one programme has several groups on the page."""
    programs = [or_not_set(item.program) for item in items]
    distinct = sorted(set(programs))
    cut = common_words(distinct) if len(distinct) > 1 else 0
    if cut < t.LIST_ROW_SHARED_MIN or any(len(name) <= cut for name in distinct):
        cut = 0
    groups: dict[str, set[str]] = {}
    for item, program in zip(items, programs, strict=True):
        groups.setdefault(program, set()).add(or_not_set(item.group))
    subjects = []
    for item, program in zip(items, programs, strict=True):
        subject = t.LIST_ROW_REST.format(rest=program[cut:].strip()) if cut else program
        if len(groups[program]) > 1:
            subject = t.LIST_ROW_GROUP.format(group=or_not_set(item.group), program=subject)
        subjects.append(subject)
    return subjects


def list_row(
    application: ApplicationView,
    with_status: bool,
    with_applicant: bool,
    subject: str | None = None,
) -> str:
    """A row of a list: number, applicant (unless the list is the applicant's own), and
    `subject` (row_subjects), by default the programme."""
    program = subject if subject is not None else or_not_set(application.program)
    if with_applicant:
        applicant = short_name(application.applicant_name)
        row = t.LIST_ROW.format(number=application.number, applicant=applicant, program=program)
    else:
        row = t.LIST_ROW_OWN.format(number=application.number, program=program)
    if with_status:
        row = f"{t.STATUS_ICONS[application.status]} {row}"
    return shorten(row, t.LIST_ROW_LIMIT)


def status_line(status_filter: ListFilter) -> str:
    status = status_filter.status
    return t.LIST_STATUS.format(status=status_label(status)) if status else t.LIST_ALL_STATUSES


def list_hint(role: Role, status_filter: ListFilter) -> str:
    """What a press on a row leads to: the decisions the role can take on the list's statuses
    (services.domain.RULES), or only the card."""
    if not VIEWS[role].decides:
        return t.LIST_HINT
    statuses = {status_filter.status} if status_filter.status else set(Status)
    decisions = frozenset(
        rule.action
        for rule in RULES
        if rule.role is role and rule.to_status is not None and rule.from_statuses & statuses
    )
    return t.LIST_HINTS.get(decisions, t.LIST_HINT)


def narrowed_lines(narrowed: Narrowed) -> list[str]:
    lines = []
    if narrowed.organization is not None:
        name = shorten(narrowed.organization, t.LIST_FACET_LIMIT)
        lines.append(t.LIST_ORGANIZATION.format(name=escape(name)))
    if narrowed.program is not None:
        name = shorten(or_not_set(narrowed.program), t.LIST_FACET_LIMIT)
        lines.append(t.LIST_PROGRAM.format(name=escape(name)))
    return lines


def application_list(
    page: Page[ApplicationView],
    shown: ListIntent,
    search: str | None,
    note: str | None = None,
    *,
    role: Role,
    narrowed: Narrowed | None = None,
) -> Screen:
    """The list of applications: header (status, filters, search, count, page) and a button
    each; `shown.narrowed` goes with `narrowed`, the organisation and programme chosen."""
    view = VIEWS[role]
    narrowed = narrowed or Narrowed()
    lines = [t.LIST_TITLES[role], status_line(shown.status_filter)]
    lines += narrowed_lines(narrowed)
    if search is not None:
        lines.append(t.LIST_SEARCH.format(query=escape(shorten(search, t.SEARCH_ECHO_LIMIT))))
    if page.total:
        lines.append(t.LIST_TOTAL.format(total=page.total))
        if page.pages > 1:
            lines.append(t.LIST_PAGE.format(page=page.index + 1, pages=page.pages))
        lines += ["", list_hint(role, shown.status_filter)]
    else:
        lines += ["", t.LIST_EMPTY_SEARCH if search is not None else t.LIST_EMPTY]
    with_status = shown.status_filter is ListFilter.ALL
    subjects = row_subjects(page.items)
    keyboard: list[Row] = [
        (
            Button(
                list_row(item, with_status, view.applicant_column, subject),
                replace(
                    card_data(item),
                    status_filter=shown.status_filter,
                    list_page=page.index,
                    search=shown.search,
                    narrowed=shown.narrowed,
                ),
            ),
        )
        for item, subject in zip(page.items, subjects, strict=True)
    ]
    current_page = replace(shown, page=page.index)
    navigation = pager(page.index, page.pages, lambda index: replace(current_page, page=index))
    if navigation:
        keyboard.append(navigation)

    def filter_button(status_filter: ListFilter) -> Button:
        label = current(t.FILTER_LABELS[status_filter], status_filter is shown.status_filter)
        target = ListIntent(
            status_filter=status_filter, search=shown.search, narrowed=shown.narrowed
        )
        return Button(label, target)

    keyboard.append((filter_button(ListFilter.NEW), filter_button(ListFilter.APPROVED)))
    keyboard.append(
        (
            filter_button(ListFilter.CANCELLED),
            filter_button(ListFilter.INCLUDED),
            filter_button(ListFilter.ALL),
        )
    )
    if view.facets:
        chosen = {
            Facet.ORGANIZATION: narrowed.organization is not None,
            Facet.PROGRAM: narrowed.program is not None,
        }
        keyboard.append(
            tuple(
                Button(
                    current(t.BUTTON_FACETS[facet], is_chosen),
                    FacetIntent(
                        action=FacetAction.CHOOSE,
                        facet=facet,
                        status_filter=shown.status_filter,
                        search=shown.search,
                        narrowed=shown.narrowed,
                    ),
                )
                for facet, is_chosen in chosen.items()
            )
        )
    search_row = []
    if view.search:
        search_row.append(Button(t.BUTTON_SEARCH, replace(current_page, action=ListAction.SEARCH)))
    if shown.search:
        clear = ListIntent(
            action=ListAction.CLEAR, status_filter=shown.status_filter, narrowed=shown.narrowed
        )
        search_row.append(Button(t.BUTTON_CLEAR_SEARCH, clear))
    if search_row:
        keyboard.append(tuple(search_row))
    keyboard.append((back_to_menu(),))
    return Screen(with_note(note, lines), tuple(keyboard))


def facet_choices(
    facet: Facet,
    page: Page[Choice],
    shown: FacetIntent,
    *,
    current_choice: int | str | None,
    narrowed: Narrowed,
) -> Screen:
    """Organisations (programmes) to narrow the list to, numbered, with how many applications
    each has. `current_choice` is what the list is narrowed to now: an organisation's id, a
    programme. The other filter already chosen (`narrowed`) is named in the header."""
    lines = [t.FACET_TITLES[facet], status_line(shown.status_filter)]
    if facet is Facet.PROGRAM:
        lines += narrowed_lines(Narrowed(organization=narrowed.organization))
    else:
        lines += narrowed_lines(Narrowed(program=narrowed.program))
    if page.total:
        lines.append(t.FACET_TOTALS[facet].format(total=page.total))
        if page.pages > 1:
            lines.append(t.LIST_PAGE.format(page=page.index + 1, pages=page.pages))
        lines += ["", t.FACET_HINTS[facet]]
    else:
        lines += ["", t.FACET_EMPTY[facet]]
    first = page.index * CHOICES_PAGE_SIZE + 1
    current_page = replace(shown, page=page.index)
    keyboard: list[Row] = []
    for index, choice in enumerate(page.items, start=first):
        name, count = or_not_set(choice.name), choice.applications
        entry = t.FACET_ENTRY.format(
            index=index, name=shorten(name, t.FACET_ENTRY_LIMIT), applications=t.APPLICATIONS(count)
        )
        lines += ["", escape(entry)]
        chosen = (choice.key if facet is Facet.ORGANIZATION else choice.name) == current_choice
        fixed = current(t.FACET_BUTTON.format(index=index, name="", count=count), chosen)
        name = shorten(name, t.FACET_BUTTON_LIMIT - utf16_length(fixed))
        label = current(t.FACET_BUTTON.format(index=index, name=name, count=count), chosen)
        target = replace(current_page, action=FacetAction.SET, choice=choice.key)
        keyboard.append((Button(label, target),))
    navigation = pager(page.index, page.pages, lambda index: replace(current_page, page=index))
    if navigation:
        keyboard.append(navigation)
    everything = current(t.FACET_ALL[shown.facet], current_choice is None)
    keyboard.append((Button(everything, replace(current_page, action=FacetAction.CLEAR)),))
    keyboard.append((Button(t.BUTTON_TO_LIST, shown.back_to_list()),))
    return Screen("\n".join(lines), tuple(keyboard))


def search_prompt(back: ListIntent) -> Screen:
    return Screen(t.SEARCH_PROMPT, ((Button(t.BUTTON_ABORT, back),),))


# --- card ----------------------------------------------------------------------------------


def application_card(
    application: ApplicationView,
    *,
    actions: Sequence[Action],
    last_change: EventView | None,
    comments: int,
    zone: ZoneInfo,
    base: AppIntent | None = None,
    note: str | None = None,
) -> Screen:
    """The card (Рисунок 8): status, who changed it last, applicant, every field, buttons.

    `note` (already markup) goes on top: what just happened, or what changed since the press.
    """
    status = application.status
    decided = last_change if status is not Status.NEW else None
    if decided is not None and decided.to_status is not status:
        decided = None  # the status came from elsewhere (an import) after the last decision
    general = [
        (label, study_dates(application.study_from, application.study_to))
        if name == "study_dates"
        else (label, or_not_set(getattr(application, name)))
        for name, label in t.CARD_FIELDS
    ]
    variable = [
        application.applicant_name,
        application.organization_name,
        *(value for _, value in general),
        actor_label(decided) if decided else "",
        (decided.comment or "") if decided else "",
    ]
    applicant, organization, *values, actor, comment = fit(variable, t.CARD_BUDGET)
    lines = [
        t.CARD_TITLE.format(number=application.number),
        t.CARD_STATUS.format(status=status_label(status)),
    ]
    if decided is not None:
        when = local_time(decided.created_at, zone)
        if decided.actor_role is None:
            lines.append(t.CARD_DECIDED_WEB_MODULE.format(when=when))
        else:
            lines.append(t.CARD_DECIDED.format(actor=escape(actor), when=when))
        if comment:
            lines.append(t.CARD_DECIDED_COMMENT.format(comment=escape(comment)))
    lines += [
        "",
        t.CARD_FIELD.format(label=t.CARD_APPLICANT, value=escape(applicant)),
        t.CARD_FIELD.format(label=t.CARD_ORGANIZATION, value=escape(organization)),
        "",
        t.CARD_GENERAL,
    ]
    lines += [
        t.CARD_FIELD.format(label=label, value=escape(value))
        for (label, _), value in zip(general, values, strict=True)
    ]
    if application.created_at is not None and application.updated_at is not None:
        lines += [
            "",
            t.CARD_CREATED.format(
                created=local_time(application.created_at, zone),
                updated=local_time(application.updated_at, zone),
            ),
        ]
    card = card_data(application, base=base)
    decisions = tuple(
        Button(t.BUTTON_ACTIONS[action], card.to(pressed))
        for action, pressed in DECISION_BUTTONS.items()
        if action in actions
    )
    comments_label = (
        t.BUTTON_COMMENTS_COUNT.format(count=comments) if comments else t.BUTTON_COMMENTS
    )
    keyboard: list[Row] = [decisions] if decisions else []
    keyboard.append(
        (
            Button(comments_label, card.to(AppAction.COMMENTS)),
            Button(t.BUTTON_HISTORY, card.to(AppAction.HISTORY)),
        )
    )
    keyboard.append((Button(t.BUTTON_TO_LIST, card.back_to_list()),))
    return Screen(with_note(note, lines), tuple(keyboard))


# --- decisions -----------------------------------------------------------------------------


def cancel_confirmation(application: ApplicationView, card: AppIntent, role: Role) -> Screen:
    text = t.CANCEL_CONFIRM.format(
        number=application.number, notified=t.NOTIFIED[role], summary=summary(application)
    )
    keyboard = (
        (
            Button(t.BUTTON_CANCEL_YES, card.to(AppAction.CANCEL_CONFIRMED)),
            Button(t.BUTTON_CANCEL_NO, card.to(AppAction.OPEN)),
        ),
    )
    return Screen(text, keyboard)


def decision_prompt(
    application: ApplicationView, action: Action, card: AppIntent, role: Role
) -> Screen:
    """«Без комментария» decides at once; «Отмена» goes back to the card."""
    text = t.DECISION_PROMPT.format(
        title=t.DECISION_TITLES[action].format(number=application.number),
        summary=summary(application),
        ask=t.DECISION_ASKS[action].format(for_whom=t.FOR_WHOM[role]),
    )
    keyboard = (
        (
            Button(t.BUTTON_NO_COMMENT, card.to(WITHOUT_COMMENT[action])),
            Button(t.BUTTON_ABORT, card.to(AppAction.ABORT)),
        ),
    )
    return Screen(text, keyboard)


def comment_prompt(application: ApplicationView, card: AppIntent, role: Role) -> Screen:
    text = t.COMMENT_PROMPT.format(
        number=application.number, summary=summary(application), readers=t.COMMENT_READERS[role]
    )
    return Screen(text, ((Button(t.BUTTON_ABORT, card.to(AppAction.COMMENTS)),),))


# --- comments and history ------------------------------------------------------------------


def _page_header(title: str, page: Page[EventView]) -> list[str]:
    lines = [title]
    if page.pages > 1:
        lines.append(t.PAGE.format(page=page.index + 1, pages=page.pages))
    return lines


def _events_keyboard(
    card: AppIntent, view: AppAction, page: Page[EventView], *, can_comment: bool = False
) -> tuple[Row, ...]:
    """Comments or history: pager, «Написать комментарий», back to the card."""
    keyboard: list[Row] = []
    navigation = pager(page.index, page.pages, lambda index: card.to(view, page=index))
    if navigation:
        keyboard.append(navigation)
    if can_comment:
        keyboard.append((Button(t.BUTTON_ADD_COMMENT, card.to(AppAction.ADD_COMMENT)),))
    keyboard.append((Button(t.BUTTON_TO_CARD, card.to(AppAction.OPEN)),))
    return tuple(keyboard)


def _events_screen(
    title: str,
    page: Page[EventView],
    entry: Callable[[EventView, str, str], str],
    empty: str,
    keyboard: tuple[Row, ...],
    note: str | None = None,
) -> Screen:
    """A page of history rows, newest first, with who acted and the comments cut to fit."""
    lines = _page_header(title, page)
    variable = [value for e in page.items for value in (actor_label(e), e.comment or "")]
    cut = iter(fit(variable, t.EVENTS_BUDGET))
    for event in page.items:
        lines += ["", entry(event, next(cut), next(cut))]
    if not page.items:
        lines += ["", empty]
    return Screen(with_note(note, lines), keyboard)


def comments(
    application: ApplicationView,
    page: Page[EventView],
    card: AppIntent,
    *,
    can_comment: bool,
    zone: ZoneInfo,
    note: str | None = None,
) -> Screen:
    """The comment thread, newest first, with «Написать комментарий» if the actor may."""

    def entry(event: EventView, actor: str, comment: str) -> str:
        when = local_time(event.created_at, zone)
        return t.COMMENT_ENTRY.format(when=when, actor=escape(actor), comment=escape(comment))

    return _events_screen(
        t.COMMENTS_TITLE.format(number=application.number),
        page,
        entry,
        t.COMMENTS_EMPTY,
        _events_keyboard(card, AppAction.COMMENTS, page, can_comment=can_comment),
        note,
    )


def history_entry(event: EventView, actor: str, comment: str, zone: ZoneInfo) -> str:
    what: list[str] = []
    action = t.HISTORY_ACTIONS.get(event.action, t.HISTORY_OTHER_ACTION)
    if event.from_status is None and event.to_status is not None:
        what.append(t.HISTORY_ARRIVAL.format(action=action, after=status_label(event.to_status)))
    elif event.to_status is not None and event.from_status is not event.to_status:
        before, after = status_label(event.from_status), status_label(event.to_status)
        what.append(t.HISTORY_TRANSITION.format(action=action, before=before, after=after))
    elif event.action != Action.COMMENT.value:
        what.append(action)
    if comment:
        what.append(t.HISTORY_COMMENT.format(comment=escape(comment)))
    source = t.SOURCES.get(event.source) or messenger_name(event.source)
    what.append(t.HISTORY_SOURCE.format(source=source))
    return t.HISTORY_ENTRY.format(
        when=local_time(event.created_at, zone), actor=escape(actor), what="\n".join(what)
    )


def history(
    application: ApplicationView, page: Page[EventView], card: AppIntent, *, zone: ZoneInfo
) -> Screen:
    """Every row of the history (история действий), newest first: who, role, what, when."""
    return _events_screen(
        t.HISTORY_TITLE.format(number=application.number),
        page,
        lambda event, actor, comment: history_entry(event, actor, comment, zone),
        t.HISTORY_EMPTY,
        _events_keyboard(card, AppAction.HISTORY, page),
    )


# --- a prompt no longer active, a text that came late, free text outside an input ----------


def prompt_closed(kind: str, card: AppIntent | None, back: ListIntent | None) -> Screen:
    """The old prompt, once the person went elsewhere: it says so, and leads back."""
    number = card.number if card is not None else 0
    keyboard: list[Row] = []
    if card is not None:
        label = t.BUTTON_OPEN_APPLICATION.format(number=number)
        keyboard.append((Button(label, card.to(AppAction.OPEN)),))
    elif back is not None:
        keyboard.append((Button(t.BUTTON_BACK_TO_LIST, back),))
    keyboard.append((back_to_menu(),))
    return Screen(t.PROMPT_CLOSED[kind].format(number=number), tuple(keyboard))


def held_echo(text: str) -> str:
    return escape(shorten(text, t.HELD_TEXT_LIMIT))


def late_text(card: AppIntent, action: Action, text: str, *, can_search: bool) -> Screen:
    """A text that came for a prompt no longer active: use it for what the prompt asked?"""
    body = t.LATE_TEXT.format(what=t.LATE_WHAT[action], number=card.number, text=held_echo(text))
    keyboard: list[Row] = [
        (Button(t.BUTTON_USE_TEXT[action], card.to(AppAction.USE_HELD)),),
        (Button(t.BUTTON_OPEN_APPLICATION.format(number=card.number), card.to(AppAction.OPEN)),),
    ]
    if can_search:
        find = ListIntent(action=ListAction.FIND_HELD, status_filter=ListFilter.ALL)
        keyboard.append((Button(t.BUTTON_SEARCH_TEXT, find),))
    keyboard.append((back_to_menu(),))
    return Screen(body, tuple(keyboard))


def offer_comment(text: str, page: Page[ApplicationView]) -> Screen:
    """An applicant's text outside an input: send it as a comment on one of her applications?"""
    lines = [t.OFFER_COMMENT.format(text=held_echo(text))]
    if page.total > len(page.items):
        lines += ["", t.OFFER_COMMENT_MORE.format(shown=len(page.items), total=page.total)]
    keyboard: list[Row] = [
        (
            Button(
                "💬 " + list_row(item, True, False),
                AppIntent(action=AppAction.USE_HELD, number=item.number),
            ),
        )
        for item in page.items
    ]
    keyboard.append((back_to_menu(),))
    return Screen("\n".join(lines), tuple(keyboard))
