"""Reading applications for screens: what an actor may see, paginated and searchable.

Visibility comes from the permission rules of services.domain (the scopes of the rules of the
actor's active role), never from a second copy of them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from sqlalchemy import case, func, or_, select

from services.applications import ref
from services.domain import RULES, Action, Actor, Scope, Status, can_view
from services.views import ApplicationView, view_of
from storage.models import Application, ApplicationEvent
from storage.repositories import ApplicationScope, Grouping, Repositories

PAGE_SIZE = 6
EVENTS_PAGE_SIZE = 5
CHOICES_PAGE_SIZE = 8
SEARCH_MAX_LENGTH = 100
NUMBER_PATTERN = re.compile(r"^(?:№|N|#)?\s*(\d{1,18})$", re.IGNORECASE)


T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list: `index` is zero-based and within range even if asked beyond it."""

    items: Sequence[T]
    index: int
    pages: int
    total: int

    def map(self, convert: Callable[[T], U]) -> Page[U]:
        """The same page of other values (plain data for a screen)."""
        return Page([convert(item) for item in self.items], self.index, self.pages, self.total)


@dataclass(frozen=True)
class Search:
    """A parsed search query: an application number or a part of the applicant's name."""

    text: str
    number: int | None = None

    @property
    def name(self) -> str | None:
        return None if self.number is not None else self.text


@dataclass(frozen=True)
class Narrowing:
    """Staff's filters of a list beside the status: one organisation, one programme.

    `program` is a whole programme as stored, "" for the applications without one.
    """

    organization_id: int | None = None
    program: str | None = None

    @property
    def is_set(self) -> bool:
        return self.organization_id is not None or self.program is not None


@dataclass(frozen=True)
class Choice:
    """An organisation or a programme to narrow a list to, and how many applications it has.

    `key` identifies it in callback data: an organisation's id, or for a programme the number
    of an application with it (programmes have no ids); `name` is "" when not given.
    """

    key: int
    name: str
    applications: int


def parse_search(text: str) -> Search | None:
    """A number («39744», «№39744») or a name fragment; None for an empty query."""
    text = " ".join(text.split())[:SEARCH_MAX_LENGTH]
    if not text:
        return None
    match = NUMBER_PATTERN.fullmatch(text)
    return Search(text=text, number=int(match.group(1)) if match else None)


def visibility(actor: Actor) -> ApplicationScope:
    """The applications the actor may see, as a query scope: what can_view() allows."""
    if actor.role not in actor.roles:
        return ApplicationScope()
    scopes = {rule.scope for rule in RULES if rule.role is actor.role}
    return ApplicationScope(
        everything=Scope.ANY in scopes,
        organization_id=actor.organization_id if Scope.OWN_ORGANIZATION in scopes else None,
        applicant_id=actor.account_id if Scope.OWN_APPLICATION in scopes else None,
    )


async def visible_application(repo: Repositories, actor: Actor, number: int) -> Application | None:
    """The application, fresh from the database, if it exists and the actor may see it."""
    application = await repo.applications.get(number)
    if application is None or not can_view(actor, ref(application)):
        return None
    return application


async def visible_view(repo: Repositories, actor: Actor, number: int) -> ApplicationView | None:
    """As `visible_application`, as a card shows it (plain data, read without the ORM)."""
    row = await repo.applications.view_row(number)
    if row is None:
        return None
    application = view_of(row)
    return application if can_view(actor, application.ref) else None


def _clamp(index: int, total: int, size: int) -> tuple[int, int]:
    """The page index within range, and the number of pages (at least one)."""
    pages = max(1, math.ceil(total / size))
    return min(max(index, 0), pages - 1), pages


async def _paginate(
    total: int,
    index: int,
    size: int,
    fetch: Callable[[int], Awaitable[Sequence[T]]],
) -> Page[T]:
    index, pages = _clamp(index, total, size)
    items = await fetch(index * size) if total else []
    return Page(items=items, index=index, pages=pages, total=total)


async def _counted_page(
    fetch: Callable[[int], Awaitable[tuple[list[T], int]]], page: int, size: int
) -> Page[T]:
    """A page from a query that counts as it fetches (`fetch(index)` -> items, total)."""
    items, total = await fetch(max(page, 0))
    index, pages = _clamp(page, total, size)
    if index != page:  # asked beyond the last page (the list shrank meanwhile)
        items, total = await fetch(index)
        index, pages = _clamp(index, total, size)
    return Page(items=items, index=index, pages=pages, total=total)


async def list_rows(
    repo: Repositories,
    actor: Actor,
    *,
    status: Status | None,
    search: Search | None = None,
    narrowing: Narrowing | None = None,
    page: int = 0,
    size: int = PAGE_SIZE,
    whole: bool = False,
) -> Page[ApplicationView]:
    """The actor's applications, newest first, optionally of one status, matching a search,
    of one organisation and programme: what a list's row shows or, `whole`, every field of the
    card with the organisation's name (the export). Plain data, read without the ORM's
    entities (ApplicationRepo.search)."""
    narrowing = narrowing or Narrowing()

    async def fetch(index: int) -> tuple[list[ApplicationView], int]:
        rows, total = await repo.applications.search(
            visibility(actor),
            status=status.value if status is not None else None,
            number=search.number if search is not None else None,
            name=search.name if search is not None else None,
            organization_id=narrowing.organization_id,
            program=narrowing.program,
            offset=index * size,
            limit=size,
            whole=whole,
        )
        return [view_of(row) for row in rows], total

    return await _counted_page(fetch, page, size)


async def history_page(
    repo: Repositories, number: int, page: int = 0, size: int = EVENTS_PAGE_SIZE
) -> Page[ApplicationEvent]:
    """The application's history (история действий), newest first."""
    events = repo.events
    return await _events_page(
        events.count_for_application, events.for_application, number, page, size
    )


async def comments_page(
    repo: Repositories, number: int, page: int = 0, size: int = EVENTS_PAGE_SIZE
) -> Page[ApplicationEvent]:
    """The application's comments (with decisions that carried one), newest first."""
    events = repo.events
    return await _events_page(events.count_comments, events.comments_for, number, page, size)


async def _events_page(
    count: Callable[[int], Awaitable[int]],
    read: Callable[..., Awaitable[Sequence[ApplicationEvent]]],
    number: int,
    page: int,
    size: int,
) -> Page[ApplicationEvent]:
    total = await count(number)

    async def fetch(offset: int) -> Sequence[ApplicationEvent]:
        return await read(number, offset=offset, limit=size)

    return await _paginate(total, page, size, fetch)


async def choices(
    repo: Repositories,
    actor: Actor,
    by: Grouping,
    *,
    status: Status | None,
    narrowing: Narrowing | None = None,
    page: int = 0,
    size: int = CHOICES_PAGE_SIZE,
) -> Page[Choice]:
    """The organisations (by name) or the programmes (alphabetically) of the applications the
    actor may see, of the status, within the other filter's choice (the chosen programme for
    organisations, the chosen organisation for programmes)."""
    narrowing = narrowing or Narrowing()
    by_program = by == "program"

    async def fetch(index: int) -> tuple[list[Choice], int]:
        rows, total = await repo.applications.grouped(
            visibility(actor),
            by,
            status=status.value if status is not None else None,
            organization_id=narrowing.organization_id if by_program else None,
            program=None if by_program else narrowing.program,
            offset=index * size,
            limit=size,
        )
        return [Choice(key, name, count) for key, name, count in rows], total

    return await _counted_page(fetch, page, size)


async def program_of(repo: Repositories, actor: Actor, key: int) -> str | None:
    """The programme a choice's key stands for ("" if none given), if the actor may see the
    application that carries it."""
    application = await visible_application(repo, actor, key)
    if application is None:
        return None
    return application.program or ""


async def organization_name(repo: Repositories, organization_id: int) -> str | None:
    return await repo.applications.organization_name(organization_id)


@dataclass(frozen=True)
class Changes:
    """What happened to the applications an actor may see, by others, since a moment."""

    arrived: int  # new applications (not the actor's own)
    decisions: int  # status changes
    comments: int

    @property
    def any(self) -> bool:
        return bool(self.arrived or self.decisions or self.comments)


async def changes_since(repo: Repositories, actor: Actor, since: datetime) -> Changes:
    """Applications that arrived since, and from the history the decisions and comments on
    the applications the actor sees, made by anyone but the actor (the web module included)."""
    scope = visibility(actor).condition()
    arrived = await repo.session.scalar(
        select(func.count())
        .select_from(Application)
        .where(scope, Application.created_at >= since, Application.applicant_id != actor.account_id)
    )
    kind = case((ApplicationEvent.action == Action.COMMENT.value, "comments"), else_="decisions")
    others = or_(
        ApplicationEvent.actor_account_id.is_(None),
        ApplicationEvent.actor_account_id != actor.account_id,
    )
    rows = await repo.session.execute(
        select(kind, func.count())
        .select_from(ApplicationEvent)
        .join(Application, Application.number == ApplicationEvent.application_number)
        .where(
            scope,
            ApplicationEvent.created_at >= since,
            ApplicationEvent.action != "create",  # an arrival, counted above
            others,
        )
        .group_by(kind)
    )
    counts = {str(name): int(count) for name, count in rows.all()}
    return Changes(
        arrived=int(arrived or 0),
        decisions=counts.get("decisions", 0),
        comments=counts.get("comments", 0),
    )
