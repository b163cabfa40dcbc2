"""Every screen and every push built from plain data (frozen dataclasses, never ORM rows), for
tests/unit/test_screens.py. Nothing here needs aiogram, a messenger's SDK or a database:
the test runs `every_screen()` in a fresh interpreter to prove that laying a screen out needs
none of them.

Two sets of data: a typical one (the seed's names and programmes) and the largest the bot
accepts (every field at the length the integration API allows, services/integration.py, in
the characters that cost the most once escaped and counted as Telegram counts: `"` becomes
`&quot;`, an emoji is two UTF-16 units; ids and pages at the codec's bounds), so that a screen
within the limits here is within them for any data the bot can hold.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from bot import texts
from bot.conversation.bulk import LIMIT as BULK_LIMIT
from bot.conversation.intents import (
    MAX_ID,
    MAX_PAGE,
    AppAction,
    AppIntent,
    Facet,
    FacetAction,
    FacetIntent,
    ListAction,
    ListFilter,
    ListIntent,
)
from bot.conversation.pushes import DIGEST_LINES, RENDERERS
from bot.screens import applications, bulk, linking, menu, pushes
from bot.screens.screen import Screen
from bot.texts import applications as application_texts
from bot.texts import bulk as bulk_texts
from bot.texts import linking as linking_texts
from bot.texts import notifications as notification_texts
from bot.texts import pushes as push_texts
from bot.texts.domain import role_label
from bot.texts.messengers import NAMES
from services.domain import Action, Actor, Role, Status, allowed_actions
from services.linking import (
    CONSENT_KIND,
    MOVE_OUTCOME_KIND,
    MOVE_REQUEST_KIND,
    UNLINKED_KIND,
    MessengerAccount,
    MoveOutcome,
    UnlinkReason,
)
from services.notifications import NotificationKind
from services.queries import CHOICES_PAGE_SIZE, EVENTS_PAGE_SIZE, PAGE_SIZE, Changes, Choice, Page
from services.views import ApplicationView, EventView

# The modules whose public functions returning a Screen are the layouts: each is built here.
LAYOUT_MODULES = (applications, bulk, menu, linking, pushes)

# Every kind of push the outbox carries: bot/conversation/pushes.py loads each and lays it out
# with a layout built below.
PUSH_KINDS = (*RENDERERS, *NotificationKind, UNLINKED_KIND, MOVE_REQUEST_KIND, MOVE_OUTCOME_KIND)

MESSENGERS = tuple(NAMES)  # the messengers a screen names: "telegram", "max"
ZONE = ZoneInfo("Asia/Yekaterinburg")
MOMENT = datetime(2026, 9, 1, 6, 5, tzinfo=UTC)

# Lengths the integration API accepts (services/integration.py: Name, FullName, Line, Long),
# and the bot's own (services/applications.py COMMENT_MAX_LENGTH, services/queries.py
# SEARCH_MAX_LENGTH); comments of the web module's history are Long.
NAME, FULL_NAME, LINE, LONG = 500, 255, 255, 4000
SEARCH = 100
USERNAME = 32  # Telegram's longest @username


def costly(length: int) -> str:
    """`length` characters, each as costly as a character can be once escaped and counted."""
    return ('"&<>📥' * length)[:length]


@dataclass(frozen=True)
class Data:
    """One set of plain values the screens are built from."""

    name: str
    full_name: str
    organization: str
    program: str
    long: str  # any Long field: description, categories, competencies
    line: str  # study form
    group: str
    comment: str
    search: str
    username: str
    number: int
    page: int  # a page index, and the number of pages beyond it
    total: int


TYPICAL = Data(
    name="typical",
    full_name="Войсковая Юлия Олеговна",
    organization="МАОУ «СОШ №1 г. Челябинска»",
    program="Цифровая образовательная среда: инструменты педагога & наставника",
    long="Учителя начальных классов, педагоги дополнительного образования",
    line="Очно-заочная с применением ДОТ",
    group="ЦОС-2026-1",
    comment="Согласовано, прошу включить в группу <сентябрь>",
    search="Войсковая",
    username="voiskovaya_yu",
    number=39744,
    page=1,
    total=13,
)
LARGEST = Data(
    name="largest",
    full_name=costly(FULL_NAME),
    organization=costly(NAME),
    program=costly(LONG),
    long=costly(LONG),
    line=costly(LINE),
    group=costly(NAME),
    comment=costly(LONG),
    search=costly(SEARCH),
    username="u" * USERNAME,
    number=MAX_ID,
    page=MAX_PAGE - 1,
    total=10**9,
)
DATA = (TYPICAL, LARGEST)


@dataclass(frozen=True)
class Built:
    """A screen and what built it: the layout (module and name) and the case; `problem` is
    why the layout refused to build it (a Screen over the limits raises ValueError)."""

    layout: str
    case: str
    screen: Screen | None
    kind: str | None = None  # the outbox kind, for a push
    problem: str | None = None


def actor(data: Data, role: Role, *, all_roles: bool = True) -> Actor:
    roles = frozenset(Role) if all_roles else frozenset({role})
    return Actor(data.number, data.full_name, role, roles, data.number)


def application(data: Data, status: Status, *, applicant: int | None = None) -> ApplicationView:
    return ApplicationView(
        number=data.number,
        status=status,
        applicant_id=applicant if applicant is not None else data.number,
        applicant_name=data.full_name,
        organization_id=data.number,
        organization_name=data.organization,
        program=data.program,
        group=data.group,
        description=data.long,
        study_from=date(2026, 9, 1),
        study_to=date(2026, 12, 25),
        study_form=data.line,
        listener_categories=data.long,
        competencies=data.long,
        dpo_organization=data.long,
        created_at=MOMENT,
        updated_at=MOMENT,
    )


def empty_application(data: Data) -> ApplicationView:
    """Only what every application has: the optional fields missing («Не указано»)."""
    return ApplicationView(data.number, Status.NEW, 1, data.full_name, 1, data.organization)


def event(
    data: Data,
    *,
    action: str = "approve",
    role: Role | None = Role.DIRECTOR,
    before: Status | None = Status.NEW,
    after: Status | None = Status.APPROVED,
    comment: bool = True,
    source: str = "telegram",
) -> EventView:
    return EventView(
        id=data.number,
        action=action,
        actor_name=data.full_name,
        actor_role=role,
        from_status=before,
        to_status=after,
        comment=data.comment if comment else None,
        source=source,
        created_at=MOMENT,
    )


def events(data: Data) -> list[EventView]:
    """A history page's worth of every sort of row: decisions, comments, the web module's."""
    kinds = [
        event(data),
        event(data, action="comment", before=None, after=None),
        event(data, action="create", role=None, before=None, after=Status.NEW, source="web"),
        event(data, action="include", role=Role.STAFF, before=Status.APPROVED, after=None),
        event(data, action="unknown", role=None, comment=False, source="import"),
    ]
    return kinds[:EVENTS_PAGE_SIZE]


def note(data: Data, role: Role) -> str:
    """The longest note a card or comments open with: what the actor just did."""
    return applications.done(Action.CANCEL, data.number, True, role)


def page(items: list[Any], data: Data, *, last: bool = False) -> Page[Any]:
    """A page in the middle of many (or the last one), with `items` on it."""
    pages = data.page + 1 if last else data.page + 2
    return Page(items, data.page, pages, max(data.total, len(items)))


def every_screen() -> list[Built]:
    """Every screen and push, in every state that changes its text or buttons, for each set
    of data."""
    return [built for data in DATA for built in _screens(data)]


def _screens(data: Data) -> Iterator[Built]:
    def build(layout: Callable[..., Screen], case: str, *args: Any, **kwargs: Any) -> Built:
        kind = kwargs.pop("kind", None)
        name, case = f"{layout.__module__}.{layout.__name__}", f"{data.name}: {case}"
        try:
            return Built(name, case, layout(*args, **kwargs), kind)
        except ValueError as error:
            return Built(name, case, None, kind, str(error))

    yield from _application_screens(data, build)
    yield from _held_and_bulk_screens(data, build)
    yield from _menu_screens(data, build)
    yield from _linking_screens(data, build)
    yield from _pushes(data, build)


Build = Callable[..., Built]


def _application_screens(data: Data, build: Build) -> Iterator[Built]:
    a = applications
    for role in Role:
        rows = [application(data, status) for status in Status][:PAGE_SIZE]
        rows += [application(data, Status.NEW)] * (PAGE_SIZE - len(rows))
        listed = page(rows, data)
        for status_filter in ListFilter:
            for search, narrowed in ((False, False), (True, True)):
                shown = ListIntent(
                    action=ListAction.SHOW,
                    status_filter=status_filter,
                    page=data.page,
                    search=search,
                    narrowed=narrowed,
                )
                yield build(
                    a.application_list,
                    f"{role} {status_filter} search={search}",
                    listed,
                    shown,
                    data.search if search else None,
                    note=application_texts.SEARCH_ABORTED if search else None,
                    role=role,
                    narrowed=a.Narrowed(data.organization, data.program) if narrowed else None,
                )
        yield build(
            a.application_list,
            f"{role} empty",
            Page([], 0, 1, 0),
            ListIntent(),
            data.search,
            role=role,
        )
    for facet in Facet:
        shown = FacetIntent(
            action=FacetAction.CHOOSE,
            facet=facet,
            choice=data.number,
            page=data.page,
            status_filter=ListFilter.ALL,
            search=True,
            narrowed=True,
        )
        choices = [
            Choice(
                data.number - index,
                data.program if facet is Facet.PROGRAM else data.organization,
                data.total,
            )
            for index in range(CHOICES_PAGE_SIZE)
        ]
        choices[-1] = Choice(1, "", 1)  # a programme not given
        current = data.number if facet is Facet.ORGANIZATION else data.program
        narrowed = a.Narrowed(data.organization, data.program)
        yield build(
            a.facet_choices,
            f"{facet}",
            facet,
            page(choices, data),
            shown,
            current_choice=current,
            narrowed=narrowed,
        )
        yield build(
            a.facet_choices,
            f"{facet} empty",
            facet,
            Page([], 0, 1, 0),
            replace(shown, page=0),
            current_choice=None,
            narrowed=a.Narrowed(),
        )
    back = ListIntent(action=ListAction.SHOW, status_filter=ListFilter.ALL, page=data.page)
    yield build(a.search_prompt, "search", back)
    base = AppIntent(
        action=AppAction.OPEN,
        number=data.number,
        status_filter=ListFilter.ALL,
        list_page=data.page,
        search=True,
        narrowed=True,
    )
    for role in Role:
        for status in Status:
            shown = application(data, status)
            who = actor(data, role)
            actions = allowed_actions(who, shown.ref)
            decided = event(data, before=Status.NEW, after=status)
            yield build(
                a.application_card,
                f"{role} {status}",
                shown,
                actions=actions,
                last_change=decided,
                comments=data.total,
                zone=ZONE,
                base=base,
                note=note(data, role),
            )
        yield build(
            a.application_card,
            f"{role} every decision",
            application(data, Status.NEW),
            actions=list(Action),
            last_change=None,
            comments=0,
            zone=ZONE,
        )
        yield build(
            a.application_card,
            f"{role} nothing given",
            empty_application(data),
            actions=[],
            last_change=event(data, role=None, comment=False),
            comments=0,
            zone=ZONE,
        )
        card = base.seen(Status.NEW)
        shown = application(data, Status.NEW)
        yield build(a.cancel_confirmation, f"{role}", shown, card, role)
        for action in a.DECISION_BUTTONS:
            yield build(a.decision_prompt, f"{role} {action}", shown, action, card, role)
        yield build(a.comment_prompt, f"{role}", shown, card, role)
        for can_comment in (True, False):
            yield build(
                a.comments,
                f"{role} can_comment={can_comment}",
                shown,
                page(events(data), data),
                card,
                can_comment=can_comment,
                zone=ZONE,
                note=note(data, role),
            )
    shown = application(data, Status.NEW)
    card = base.seen(Status.NEW)
    yield build(a.comments, "none", shown, Page([], 0, 1, 0), card, can_comment=True, zone=ZONE)
    yield build(a.history, "rows", shown, page(events(data), data, last=True), card, zone=ZONE)
    yield build(a.history, "none", shown, Page([], 0, 1, 0), card, zone=ZONE)


def _held_and_bulk_screens(data: Data, build: Build) -> Iterator[Built]:
    a = applications
    base = AppIntent(action=AppAction.OPEN, number=data.number, status_filter=ListFilter.ALL)
    back = ListIntent(status_filter=ListFilter.ALL, page=data.page, search=True)
    for kind in application_texts.PROMPT_CLOSED:
        yield build(a.prompt_closed, f"{kind} from a card", kind, base, None)
        yield build(a.prompt_closed, f"{kind} from a list", kind, None, back)
        yield build(a.prompt_closed, f"{kind} from nowhere", kind, None, None)
    for action in application_texts.LATE_WHAT:
        for can_search in (True, False):
            case = f"{action} {can_search=}"
            yield build(a.late_text, case, base, action, data.comment, can_search=can_search)
    own = [application(data, status) for status in Status][:PAGE_SIZE]
    yield build(a.offer_comment, "more than shown", data.comment, page(own, data))
    yield build(a.offer_comment, "one", data.comment, Page(own[:1], 0, 1, 1))
    listed = page([application(data, Status.NEW)] * PAGE_SIZE, data)
    for search in (False, True):
        yield build(bulk.picker, f"none picked {search=}", listed, set(), search)
        yield build(bulk.picker, f"all picked {search=}", listed, {data.number}, search)
        everything = [
            replace(application(data, Status.NEW), number=n) for n in range(1, BULK_LIMIT + 1)
        ]
        yield build(bulk.confirmation, f"{BULK_LIMIT} {search=}", everything, [], search)
        yield build(
            bulk.confirmation,
            f"one, others excluded {search=}",
            everything[:1],
            list(range(2, BULK_LIMIT)),
            search,
        )
        yield build(bulk.comment_prompt, f"{BULK_LIMIT} {search=}", BULK_LIMIT, search)
        for text in (bulk_texts.NOTHING_TO_APPROVE, bulk_texts.NOTHING_PICKED, bulk_texts.GONE):
            yield build(bulk.nothing, f"{text[:20]} {search=}", search, text)
        shown = ListIntent(
            status_filter=ListFilter.NEW, page=data.page, search=search, narrowed=True
        )
        screen = a.application_list(listed, shown, data.search, role=Role.DIRECTOR)
        yield build(bulk.with_bulk_buttons, f"{search=}", screen, data.total, search)
        yield build(bulk.with_export_button, f"{search=}", screen, shown)
        both = bulk.with_bulk_buttons(screen, data.total, search)
        yield build(bulk.with_export_button, f"and bulk {search=}", both, shown)
    numbers = list(range(1, BULK_LIMIT + 1))
    yield build(
        menu.message, "bulk result", bulk.result(BULK_LIMIT // 3, numbers[:200], numbers[200:])
    )


def _menu_screens(data: Data, build: Build) -> Iterator[Built]:
    for role in Role:
        for all_roles in (True, False):
            who = actor(data, role, all_roles=all_roles)
            case = f"{role} all_roles={all_roles}"
            yield build(menu.main_menu, case, who, data.total)
            yield build(menu.profile, case, who, data.organization)
            yield build(menu.roles, case, who)
            for messenger in MESSENGERS:
                yield build(menu.help_screen, f"{case} in {messenger}", who, messenger)
            for muted in (False, True):
                for digest in (False, True):
                    settings = menu.NotificationSettings(muted, digest, time(9, 0), ZONE.key)
                    yield build(menu.notifications, f"{case} {muted=} {digest=}", settings, who)
            for pushed in ({"telegram"}, {"max"}, {"telegram", "max"}):
                both = menu.NotificationSettings(
                    False, True, time(9, 0), ZONE.key, ("telegram", "max"), frozenset(pushed)
                )
                yield build(menu.notifications, f"{case} bound in both, to {pushed}", both, who)
        yield build(menu.profile, f"{role} no organisation", actor(data, role), None)
        since = "01.09.2026 11:05"
        for changes in (Changes(0, 0, 0), Changes(data.total, data.total, data.total)):
            yield build(menu.muted_summary, f"{role} {changes}", changes, since, role)
    for name, text in catalogue():
        yield build(menu.message, name, text, menu=True)
        yield build(menu.message, f"{name} alone", text)


def catalogue() -> list[tuple[str, str]]:
    """The catalogue's finished texts (no placeholders), each a message the bot may send."""
    return [
        (f"{module.__name__}.{name}", value)
        for module in (texts, application_texts, linking_texts, notification_texts, push_texts)
        for name, value in vars(module).items()
        if name.isupper() and isinstance(value, str) and "{" not in value and value.strip()
    ]


def _linking_screens(data: Data, build: Build) -> Iterator[Built]:
    url = "https://dpo.example.ru/signin/" + "x" * 512
    for messenger in MESSENGERS:
        yield from _linking_screens_in(data, build, url, messenger)
    yield build(linking.switch_kept, "kept", data.full_name)
    for already in (False, True):
        role = role_label(Role.DIRECTOR)
        yield build(linking.signed_in, f"{already=}", data.full_name, role, already=already)


def _linking_screens_in(data: Data, build: Build, url: str, messenger: str) -> Iterator[Built]:
    yield build(linking.welcome, f"welcome in {messenger}", 30, messenger)
    yield build(linking.welcome_with_sign_in, f"sign-in in {messenger}", 30, url, messenger)
    yield build(linking.consent, f"consent in {messenger}", messenger)
    yield build(linking.consent_pointer, f"consent pointer in {messenger}", messenger)
    yield build(
        linking.switch_question,
        f"switch in {messenger}",
        data.full_name,
        data.full_name,
        data.number,
        messenger,
    )
    yield build(linking.move_requested, f"requested in {messenger}", "01.09.2026 11:05", messenger)
    other = "telegram" if messenger == "max" else "max"

    def questions(question: Callable[..., Screen], asker: str, name: str) -> Iterator[Built]:
        """The question to the owner, of an asker in `asker` with a username and without."""
        for username in (data.username, None):
            requester = MessengerAccount(asker, MAX_ID, username)
            yield build(
                question,
                f"{name}@{username} in {messenger}",
                requester,
                "01.09.2026 11:05",
                data.number,
                messenger,
                kind=MOVE_REQUEST_KIND,
            )

    yield from questions(linking.move_question, messenger, "")
    for asked in ((other,), ("max", "telegram")):
        yield build(
            linking.add_requested,
            f"add requested in {messenger}, asked in {asked}",
            "01.09.2026 11:05",
            asked,
            messenger,
        )
    yield from questions(linking.add_question, other, "add ")
    for outcome in MoveOutcome:
        who = actor(data, Role.DIRECTOR) if outcome is MoveOutcome.ALLOWED else None
        for adding in (False, True):
            yield build(
                linking.move_outcome,
                f"{outcome} in {messenger} {adding=}",
                outcome,
                who,
                messenger,
                adding=adding,
                by=other,
                kind=MOVE_OUTCOME_KIND,
            )
    yield build(linking.consent, f"consent push in {messenger}", messenger, kind=CONSENT_KIND)
    yield build(linking.logout_question, f"logout in {messenger}", data.full_name, messenger)


def unlinked(payload: dict[str, object], messenger: str) -> Screen:
    """The "unlinked" push as bot/conversation/pushes.py lays it out: its text alone."""
    return Screen(linking_texts.render_unlinked(payload, messenger))


def _pushes(data: Data, build: Build) -> Iterator[Built]:
    p = pushes
    for hide_names in (False, True):
        for status in Status:
            shown = application(data, status)
            for own in (False, True):
                yield build(
                    p.new_application,
                    f"{status} {hide_names=} {own=}",
                    shown,
                    hide_names=hide_names,
                    own=own,
                    kind=NotificationKind.NEW_APPLICATION,
                )
            for to_applicant in (False, True):
                case = f"{status} {to_applicant=} {hide_names=}"
                for role in (Role.DIRECTOR, Role.LISTENER, Role.STAFF, None):
                    moved = event(data, role=role, before=Status.NEW, after=status)
                    yield build(
                        p.status_changed,
                        f"{case} by {role}",
                        shown,
                        moved,
                        to_applicant=to_applicant,
                        hide_names=hide_names,
                        kind=NotificationKind.STATUS_CHANGED,
                    )
                    said = event(data, action="comment", role=role, before=None, after=None)
                    yield build(
                        p.comment,
                        f"{case} by {role}",
                        shown,
                        said,
                        to_applicant=to_applicant,
                        hide_names=hide_names,
                        kind=NotificationKind.COMMENT,
                    )
        oldest = [application(data, Status.NEW)] * DIGEST_LINES
        yield build(
            p.digest,
            f"more than listed {hide_names=}",
            data.total,
            oldest,
            hide_names=hide_names,
            kind=NotificationKind.DIGEST,
        )
        yield build(
            p.digest,
            f"one {hide_names=}",
            1,
            [empty_application(data)],
            hide_names=hide_names,
            kind=NotificationKind.DIGEST,
        )
    organizations = [(data.organization, data.total)] * 40
    for listed in (organizations, organizations[:1]):
        yield build(
            p.staff_digest,
            f"{len(listed)} organisations",
            listed,
            kind=NotificationKind.STAFF_DIGEST,
        )
    for reason in [*UnlinkReason, "something else"]:
        for messenger in MESSENGERS:
            screen = unlinked({"reason": str(reason)}, messenger)
            case = f"{data.name}: {reason} in {messenger}"
            yield Built(f"{__name__}.unlinked", case, screen, UNLINKED_KIND)
