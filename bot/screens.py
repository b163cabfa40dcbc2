"""Application screens as pure functions of data: the list, the card, decision prompts, comments
and history. Each returns the HTML text and the keyboard; handlers load the data and show them.

Every role's router draws its applications with these: buttons follow the actions the domain
allows the actor (services.domain.allowed_actions), so a role sees only what it may press. What
else differs between the roles' screens is the small RoleView of each role (VIEWS).
Over-long values are cut as plain text before escaping (texts.shorten / texts.fit), so a screen
stays within Telegram's 4096 characters — UTF-16 code units, as Telegram counts — and its HTML
stays whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from aiogram.types import InlineKeyboardMarkup

from bot import keyboards
from bot.callbacks import AppAction, AppCb, Facet, FacetCb, ListCb, ListFilter, StatusCode
from bot.texts import applications as t
from bot.texts import fit, html, shorten, utf16_length
from services.domain import Action, Role, Status
from services.queries import CHOICES_PAGE_SIZE, Choice, Page
from storage.models import Application, ApplicationEvent


@dataclass(frozen=True)
class Screen:
    text: str
    markup: InlineKeyboardMarkup | None = None


@dataclass(frozen=True)
class RoleView:
    """What differs between the roles' application lists; the rest follows the rules."""

    home: ListFilter  # the status filter of the list the main menu opens
    search: bool = True  # «🔍 Поиск» by name or number
    facets: bool = False  # filters by organisation and by programme
    applicant_column: bool = True  # the applicant's name in the list's rows

    def home_list(self) -> ListCb:
        return ListCb(status_filter=self.home)

    def home_card(self, number: int) -> AppCb:
        """A card opened from outside a list (a search, a link): «◀ К списку» goes home."""
        return AppCb(action=AppAction.OPEN, number=number, status_filter=self.home)


VIEWS: dict[Role, RoleView] = {
    # The director decides on the unprocessed applications of the organisation.
    Role.DIRECTOR: RoleView(home=ListFilter.NEW),
    # The applicant follows their own applications, whatever their status.
    Role.LISTENER: RoleView(home=ListFilter.ALL, search=False, applicant_column=False),
    # Staff include the applications directors approved, across organisations.
    Role.STAFF: RoleView(home=ListFilter.APPROVED, facets=True),
}


@dataclass(frozen=True)
class Narrowed:
    """The organisation and programme a list is narrowed to, as shown (plain text)."""

    organization: str | None = None
    program: str | None = None


# --- formatting ----------------------------------------------------------------------------


def local_time(moment: datetime, zone: ZoneInfo) -> str:
    """A moment as the director's clock shows it: 06.09.2023 14:05."""
    return moment.astimezone(zone).strftime(t.TIME_FORMAT)


def short_name(full_name: str) -> str:
    """«Войсковая Юлия Олеговна» -> «Войсковая Ю. О.»."""
    surname, *rest = full_name.split() or [""]
    initials = " ".join(f"{part[0]}." for part in rest)
    return f"{surname} {initials}".strip()


def or_not_set(value: str | None) -> str:
    value = (value or "").strip()
    return value or t.NOT_SET


def study_dates(start: date | None, end: date | None) -> str:
    if start and end:
        return t.CARD_DATES.format(
            start=start.strftime(t.DATE_FORMAT), end=end.strftime(t.DATE_FORMAT)
        )
    if start:
        return t.CARD_DATE_FROM.format(start=start.strftime(t.DATE_FORMAT))
    if end:
        return t.CARD_DATE_TO.format(end=end.strftime(t.DATE_FORMAT))
    return t.NOT_SET


def actor_label(event: ApplicationEvent) -> str:
    """Who acted, as plain text: «Петров Пётр Петрович (Руководитель ОО)»."""
    if event.actor_role is None:
        return event.actor_name or t.ACTOR_WEB_MODULE
    try:
        role = Role(event.actor_role).label
    except ValueError:
        return event.actor_name
    return t.ACTOR.format(name=event.actor_name, role=role)


def status_label(code: str | None) -> str:
    try:
        return Status(code or "").label
    except ValueError:
        return code or t.NOT_SET


def summary(application: Application) -> str:
    """One escaped line naming the application: applicant and programme."""
    line = t.SUMMARY.format(
        applicant=application.applicant.full_name, program=or_not_set(application.program)
    )
    return html(shorten(line, t.SUMMARY_LIMIT))


def card_data(application: Application, *, base: AppCb | None = None) -> AppCb:
    """The callback of this card as now shown: its current status, the list it came from."""
    status = Status(application.status)
    if base is None:
        return AppCb(action=AppAction.OPEN, number=application.number).seen(status)
    return base.to(AppAction.OPEN).model_copy(
        update={"number": application.number, "status": StatusCode.of(status)}
    )


# --- list ----------------------------------------------------------------------------------


def list_row(application: Application, with_status: bool, with_applicant: bool = True) -> str:
    program = or_not_set(application.program)
    if with_applicant:
        applicant = short_name(application.applicant.full_name)
        row = t.LIST_ROW.format(number=application.number, applicant=applicant, program=program)
    else:
        row = t.LIST_ROW_OWN.format(number=application.number, program=program)
    if with_status:
        row = f"{t.STATUS_ICONS[Status(application.status)]} {row}"
    return shorten(row, t.LIST_ROW_LIMIT)


def status_line(status_filter: ListFilter) -> str:
    status = status_filter.status
    return t.LIST_STATUS.format(status=status.label) if status else t.LIST_ALL_STATUSES


def narrowed_lines(narrowed: Narrowed) -> list[str]:
    lines = []
    if narrowed.organization is not None:
        name = shorten(narrowed.organization, t.LIST_FACET_LIMIT)
        lines.append(t.LIST_ORGANIZATION.format(name=html(name)))
    if narrowed.program is not None:
        name = shorten(or_not_set(narrowed.program), t.LIST_FACET_LIMIT)
        lines.append(t.LIST_PROGRAM.format(name=html(name)))
    return lines


def application_list(
    page: Page[Application],
    shown: ListCb,
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
    lines = [note, ""] if note else []
    lines += [t.LIST_TITLES[role], status_line(shown.status_filter)]
    lines += narrowed_lines(narrowed)
    if search is not None:
        lines.append(t.LIST_SEARCH.format(query=html(shorten(search, t.SEARCH_ECHO_LIMIT))))
    if page.total:
        lines.append(t.LIST_TOTAL.format(total=page.total))
        if page.pages > 1:
            lines.append(t.LIST_PAGE.format(page=page.index + 1, pages=page.pages))
        lines += ["", t.LIST_HINTS[role]]
    else:
        lines += ["", t.LIST_EMPTY_SEARCH if search is not None else t.LIST_EMPTY]
    context = {
        "status_filter": shown.status_filter,
        "list_page": page.index,
        "search": shown.search,
        "narrowed": shown.narrowed,
    }
    with_status = shown.status_filter is ListFilter.ALL
    rows = [
        (
            list_row(item, with_status, view.applicant_column),
            card_data(item).model_copy(update=context),
        )
        for item in page.items
    ]
    current = shown.model_copy(update={"page": page.index})
    markup = keyboards.application_list(
        rows,
        current,
        page.index,
        page.pages,
        search=view.search,
        facets={
            Facet.ORGANIZATION: narrowed.organization is not None,
            Facet.PROGRAM: narrowed.program is not None,
        }
        if view.facets
        else None,
    )
    return Screen("\n".join(lines), markup)


def facet_choices(
    facet: Facet,
    page: Page[Choice],
    shown: FacetCb,
    *,
    current: int | str | None,
    narrowed: Narrowed,
) -> Screen:
    """Organisations (programmes) to narrow the list to, numbered, with how many applications
    each has. `current` is what the list is narrowed to now: an organisation's id, a programme.
    The other filter already chosen (`narrowed`) is named in the header."""
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
    buttons = []
    for index, choice in enumerate(page.items, start=first):
        name, count = or_not_set(choice.name), choice.applications
        entry = t.FACET_ENTRY.format(
            index=index, name=shorten(name, t.FACET_ENTRY_LIMIT), count=count
        )
        lines += ["", html(entry)]
        chosen = (choice.key if facet is Facet.ORGANIZATION else choice.name) == current
        fixed = keyboards.current(t.FACET_BUTTON.format(index=index, name="", count=count), chosen)
        name = shorten(name, t.FACET_BUTTON_LIMIT - utf16_length(fixed))
        label = keyboards.current(
            t.FACET_BUTTON.format(index=index, name=name, count=count), chosen
        )
        buttons.append((label, choice.key))
    current_page = shown.model_copy(update={"page": page.index})
    markup = keyboards.facet_choices(
        buttons, current_page, page.index, page.pages, any_chosen=current is not None
    )
    return Screen("\n".join(lines), markup)


def search_prompt(back: ListCb) -> Screen:
    return Screen(t.SEARCH_PROMPT, keyboards.input_prompt(back))


# --- card ----------------------------------------------------------------------------------


def application_card(
    application: Application,
    *,
    actions: Sequence[Action],
    last_change: ApplicationEvent | None,
    comments: int,
    zone: ZoneInfo,
    base: AppCb | None = None,
    note: str | None = None,
) -> Screen:
    """The card (Рисунок 8): status, who changed it last, applicant, every field, buttons.

    `note` (already HTML) goes on top: what just happened, or what changed since the press.
    """
    status = Status(application.status)
    decided = last_change if status is not Status.NEW else None
    if decided is not None and decided.to_status != status.value:
        decided = None  # the status came from elsewhere (an import) after the last decision
    general = [
        (label, study_dates(application.study_from, application.study_to))
        if name == "study_dates"
        else (label, or_not_set(getattr(application, name)))
        for name, label in t.CARD_FIELDS
    ]
    variable = [
        application.applicant.full_name,
        application.organization.name,
        *(value for _, value in general),
        actor_label(decided) if decided else "",
        (decided.comment or "") if decided else "",
    ]
    applicant, organization, *values, actor, comment = fit(variable, t.CARD_BUDGET)
    lines = [note, ""] if note else []
    lines += [
        t.CARD_TITLE.format(number=application.number),
        t.CARD_STATUS.format(status=status.label),
    ]
    if decided is not None:
        when = local_time(decided.created_at, zone)
        lines.append(t.CARD_DECIDED.format(actor=html(actor), when=when))
        if comment:
            lines.append(t.CARD_DECIDED_COMMENT.format(comment=html(comment)))
    lines += [
        "",
        t.CARD_FIELD.format(label=t.CARD_APPLICANT, value=html(applicant)),
        t.CARD_FIELD.format(label=t.CARD_ORGANIZATION, value=html(organization)),
        "",
        t.CARD_GENERAL,
    ]
    lines += [
        t.CARD_FIELD.format(label=label, value=html(value))
        for (label, _), value in zip(general, values, strict=True)
    ]
    lines += [
        "",
        t.CARD_CREATED.format(
            created=local_time(application.created_at, zone),
            updated=local_time(application.updated_at, zone),
        ),
    ]
    card = card_data(application, base=base)
    return Screen("\n".join(lines), keyboards.application_card(card, actions, comments))


def status_changed(before: Status, after: Status) -> str:
    return t.STATUS_CHANGED.format(before=before.label, after=after.label)


def done(action: Action, number: int, with_comment: bool, role: Role) -> str:
    """What the actor in the role just did, and who hears of it."""
    return t.DONE[action].format(
        number=number,
        notified=t.NOTIFIED[role],
        comment=t.DONE_WITH_COMMENT if with_comment else "",
        sent_to=t.SENT_TO[role],
    )


# --- decisions -----------------------------------------------------------------------------


def cancel_confirmation(application: Application, card: AppCb, role: Role) -> Screen:
    text = t.CANCEL_CONFIRM.format(
        number=application.number, notified=t.NOTIFIED[role], summary=summary(application)
    )
    return Screen(text, keyboards.cancel_confirmation(card))


def decision_prompt(application: Application, action: Action, card: AppCb, role: Role) -> Screen:
    text = t.DECISION_PROMPT.format(
        title=t.DECISION_TITLES[action].format(number=application.number),
        summary=summary(application),
        ask=t.DECISION_ASKS[action].format(for_whom=t.FOR_WHOM[role]),
    )
    return Screen(text, keyboards.decision_prompt(card, action))


def comment_prompt(application: Application, card: AppCb, role: Role) -> Screen:
    text = t.COMMENT_PROMPT.format(
        number=application.number, summary=summary(application), readers=t.COMMENT_READERS[role]
    )
    return Screen(text, keyboards.input_prompt(card.to(AppAction.COMMENTS)))


# --- comments and history ------------------------------------------------------------------


def _page_header(title: str, page: Page[ApplicationEvent]) -> list[str]:
    lines = [title]
    if page.pages > 1:
        lines.append(t.PAGE.format(page=page.index + 1, pages=page.pages))
    return lines


def comments(
    application: Application,
    page: Page[ApplicationEvent],
    card: AppCb,
    *,
    can_comment: bool,
    zone: ZoneInfo,
    note: str | None = None,
) -> Screen:
    """The comment thread, newest first, with «Написать комментарий» if the actor may."""
    lines = [note, ""] if note else []
    lines += _page_header(t.COMMENTS_TITLE.format(number=application.number), page)
    variable = [value for e in page.items for value in (actor_label(e), e.comment or "")]
    cut = iter(fit(variable, t.EVENTS_BUDGET))
    for event in page.items:
        actor, comment = next(cut), next(cut)
        when = local_time(event.created_at, zone)
        entry = t.COMMENT_ENTRY.format(when=when, actor=html(actor), comment=html(comment))
        lines += ["", entry]
    if not page.items:
        lines += ["", t.COMMENTS_EMPTY]
    markup = keyboards.application_events(
        card, AppAction.COMMENTS, page.index, page.pages, can_comment=can_comment
    )
    return Screen("\n".join(lines), markup)


def history_entry(event: ApplicationEvent, actor: str, comment: str, zone: ZoneInfo) -> str:
    what: list[str] = []
    action = t.HISTORY_ACTIONS.get(event.action, t.HISTORY_OTHER_ACTION)
    if event.from_status is None and event.to_status is not None:
        after = status_label(event.to_status)
        what.append(t.HISTORY_ARRIVAL.format(action=action, after=after))
    elif event.to_status is not None and event.from_status != event.to_status:
        before, after = status_label(event.from_status), status_label(event.to_status)
        what.append(t.HISTORY_TRANSITION.format(action=action, before=before, after=after))
    elif event.action != Action.COMMENT.value:
        what.append(action)
    if comment:
        what.append(t.HISTORY_COMMENT.format(comment=html(comment)))
    what.append(t.HISTORY_SOURCE.format(source=t.SOURCES.get(event.source, event.source)))
    return t.HISTORY_ENTRY.format(
        when=local_time(event.created_at, zone), actor=html(actor), what="\n".join(what)
    )


def history(
    application: Application, page: Page[ApplicationEvent], card: AppCb, *, zone: ZoneInfo
) -> Screen:
    """Every row of the history (история действий), newest first: who, role, what, when."""
    lines = _page_header(t.HISTORY_TITLE.format(number=application.number), page)
    variable = [value for e in page.items for value in (actor_label(e), e.comment or "")]
    cut = iter(fit(variable, t.EVENTS_BUDGET))
    for event in page.items:
        lines += ["", history_entry(event, next(cut), next(cut), zone)]
    if not page.items:
        lines += ["", t.HISTORY_EMPTY]
    markup = keyboards.application_events(card, AppAction.HISTORY, page.index, page.pages)
    return Screen("\n".join(lines), markup)
