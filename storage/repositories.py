"""Repositories: the queries the services need, grouped in one holder per DB session."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    RowMapping,
    Select,
    String,
    and_,
    bindparam,
    delete,
    false,
    func,
    insert,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, joinedload

from storage import outbox_signal
from storage.db import connection_of
from storage.models import (
    PUSH_BOTH,
    Account,
    AccountRole,
    Application,
    ApplicationEvent,
    Binding,
    FsmState,
    LinkFailure,
    LinkToken,
    Organization,
    OutboxMessage,
    fold_name,
)

# PostgreSQL advisory lock that orders history rows for the decisions feed (see feed_lock).
EVENTS_FEED_LOCK = 0x44504F01


async def feed_lock(session: AsyncSession, *, shared: bool) -> None:
    """On PostgreSQL, history ids come from a sequence and may commit out of order: a feed read
    that saw id 12 before id 11 committed would skip 11 for good. Writers take this lock shared
    before they lock an application row and hold it until commit; the feed takes it exclusively,
    so it reads only once every earlier id is committed. SQLite serialises writers already.

    A transaction takes the shared lock once (a decision's UPDATE and its history row's INSERT
    both ask): the transaction that holds it is kept in the session's `info`. One taken inside
    a savepoint is not remembered (rolling the savepoint back would release it)."""
    if session.get_bind().dialect.name != "postgresql":
        return
    sync = session.sync_session
    held = sync.info.get(_FEED_LOCKED)
    if shared and held is not None and held is sync.get_transaction():
        return
    await session.execute(_FEED_LOCK_SHARED if shared else _FEED_LOCK)
    if shared and not sync.in_nested_transaction():
        sync.info[_FEED_LOCKED] = sync.get_transaction()


_FEED_LOCK_SHARED = text(f"SELECT pg_advisory_xact_lock_shared({EVENTS_FEED_LOCK})")
_FEED_LOCK = text(f"SELECT pg_advisory_xact_lock({EVENTS_FEED_LOCK})")
_FEED_LOCKED = "feed_lock_shared"  # session.info: the transaction holding the shared lock


@dataclass(frozen=True)
class ApplicationScope:
    """Which applications a query may return: those matching any condition set here.

    Built by the services from the permission rules; an empty scope matches nothing.
    """

    everything: bool = False
    organization_id: int | None = None
    applicant_id: int | None = None

    def condition(self) -> ColumnElement[bool]:
        """The scope as a condition with its values (for a query of its own)."""
        query = _ListQuery(self)
        return _scope_condition(query.shape()).params(query.params())


# The people an application or a link names, with their roles, in the same query (the roles'
# own default, a second SELECT, would cost a round trip on every update).
WITH_APPLICANT = joinedload(Application.applicant).joinedload(Account.roles)
WITH_ACCOUNT = joinedload(Binding.account).joinedload(Account.roles)

# What a list's row shows of an application, and what a card (or an export's row) shows:
# plain columns labelled as services.views.ApplicationView's fields (no ORM entities).
_ROW_COLUMNS = (
    Application.number,
    Application.status,
    Application.applicant_id,
    Account.full_name.label("applicant_name"),
    Application.organization_id,
    Application.program,
    Application.group.label("group"),
)
_CARD_COLUMNS = (
    *_ROW_COLUMNS,
    Organization.name.label("organization_name"),
    Application.description,
    Application.study_from,
    Application.study_to,
    Application.study_form,
    Application.listener_categories,
    Application.competencies,
    Application.dpo_organization,
    Application.created_at,
    Application.updated_at,
)


def _from_applications(whole: bool) -> Select[Any]:
    """The columns of a list's rows (or, `whole`, of a card) with what they join."""
    query = select(*(_CARD_COLUMNS if whole else _ROW_COLUMNS)).join_from(
        Application, Account, Account.id == Application.applicant_id
    )
    if whole:
        query = query.join(Organization, Organization.id == Application.organization_id)
    return query


@dataclass(frozen=True)
class _ListShape:
    """Which conditions a query of applications has, their values bound per call
    (`_ListQuery.params`): its statements are built once per shape (`_list_statements` and
    the like), so SQLAlchemy neither rebuilds nor re-keys them, nor adapts a cached result to a
    new statement object."""

    everything: bool
    scope_organization: bool
    scope_applicant: bool
    status: bool
    number: bool
    named: bool  # a part of the applicant's name
    organization: bool
    program: bool
    limit: bool
    whole: bool  # every column of the card, not only a list row's


@dataclass(frozen=True)
class _ListQuery:
    """What a query of applications asks for: its shape, and its values as parameters."""

    scope: ApplicationScope
    status: str | None = None
    number: int | None = None
    name: str | None = None
    organization_id: int | None = None
    program: str | None = None
    offset: int = 0
    limit: int | None = None
    whole: bool = False

    def shape(self) -> _ListShape:
        scope = self.scope
        return _ListShape(
            everything=scope.everything,
            scope_organization=scope.organization_id is not None,
            scope_applicant=scope.applicant_id is not None,
            status=self.status is not None,
            number=self.number is not None,
            named=self.name is not None,
            organization=self.organization_id is not None,
            program=self.program is not None,
            limit=self.limit is not None,
            whole=self.whole,
        )

    def params(self) -> dict[str, Any]:
        return {
            "scope_organization": self.scope.organization_id,
            "scope_applicant": self.scope.applicant_id,
            "status": self.status,
            "number": self.number,
            "pattern": None if self.name is None else _name_pattern(self.name),
            "organization": self.organization_id,
            "program": self.program,
            "offset": self.offset,
            "limit": self.limit,
        }


def _program() -> ColumnElement[str]:
    """A programme as the staff's filter compares it: applications without one form one group."""
    return func.coalesce(Application.program, "", type_=String)


def _like_escaped(value: str) -> str:
    return value.replace("/", "//").replace("%", "/%").replace("_", "/_")


def _name_pattern(name: str) -> str:
    """LIKE's pattern (escaped with "/") of a name's part, folded as the stored names are."""
    return f"%{_like_escaped(fold_name(name))}%"


def _named(everything: bool) -> ColumnElement[bool]:
    """The applicant's stored folded name matches the pattern. Across every application the
    matching accounts are found first (on PostgreSQL through the trigram index); within a
    narrow scope (an organisation's or a person's applications), each application's applicant
    is looked up by its key."""
    folded = Account.name_folded.like(bindparam("pattern"), escape="/")
    if everything:
        return Application.applicant_id.in_(select(Account.id).where(folded))
    return (
        select(Account.id)
        .where(Account.id == Application.applicant_id, folded)
        .correlate(Application)
        .exists()
    )


def _scope_condition(shape: _ListShape) -> ColumnElement[bool]:
    """The applications the scope may see; an empty scope matches nothing."""
    if shape.everything:
        return true()
    conditions: list[ColumnElement[bool]] = []
    if shape.scope_organization:
        conditions.append(Application.organization_id == bindparam("scope_organization"))
    if shape.scope_applicant:
        conditions.append(Application.applicant_id == bindparam("scope_applicant"))
    return or_(false(), *conditions)


def _where(shape: _ListShape) -> ColumnElement[bool]:
    """The scope, then the filters that are set."""
    conditions = [_scope_condition(shape)]
    if shape.status:
        conditions.append(Application.status == bindparam("status"))
    if shape.organization:
        conditions.append(Application.organization_id == bindparam("organization"))
    if shape.program:
        conditions.append(_program() == bindparam("program"))
    if shape.number:
        conditions.append(Application.number == bindparam("number"))
    if shape.named:
        conditions.append(_named(shape.everything))
    return and_(*conditions)


def _paged(query: Select[Any], shape: _ListShape) -> Select[Any]:
    query = query.offset(bindparam("offset"))
    return query.limit(bindparam("limit")) if shape.limit else query


@functools.cache
def _list_statements(shape: _ListShape) -> tuple[Select[Any], Select[Any]]:
    """A list's page (its rows, each with the total) and its count, for one shape."""
    where = _where(shape)
    counted = select(func.count()).select_from(Application).where(where)
    # The page and, on each of its rows, how many match in all: one statement instead of a
    # count and a page. Without a name the count is an uncorrelated subquery, run once per
    # statement (a window, count() OVER (), would carry every matching row's columns to a
    # sorter); with one a window, for the subquery would compare every applicant's name
    # again, and a name leaves few rows to sort (a director's search on SQLite: 3.1 → 1.6 ms).
    total = func.count().over() if shape.named else counted.correlate(None).scalar_subquery()
    page = (
        _from_applications(shape.whole)
        .add_columns(total.label("total"))
        .where(where)
        .order_by(Application.created_at.desc(), Application.number.desc())
    )
    return _paged(page, shape), counted


@functools.cache
def _organizations_statements(shape: _ListShape) -> tuple[Select[Any], Select[Any]]:
    """The organisations of a shape's applications (id, name, how many) by name, and their
    count."""
    grouped = (
        select(Application.organization_id.label("id"), func.count().label("applications"))
        .where(_where(shape))
        .group_by(Application.organization_id)
        .subquery()
    )
    page = (
        select(Organization.id, Organization.name, grouped.c.applications)
        .join(grouped, grouped.c.id == Organization.id)
        .order_by(Organization.name, Organization.id)
    )
    return _paged(page, shape), select(func.count()).select_from(grouped)


@functools.cache
def _programs_statements(shape: _ListShape) -> tuple[Select[Any], Select[Any]]:
    """The programmes of a shape's applications (the smallest number with it, the programme or
    "", how many) by programme, and their count."""
    applications = (
        select(_program().label("program"), Application.number).where(_where(shape)).subquery()
    )
    grouped = (
        select(
            func.min(applications.c.number).label("key"),
            applications.c.program,
            func.count().label("applications"),
        )
        .group_by(applications.c.program)
        .subquery()
    )
    page = select(grouped.c.key, grouped.c.program, grouped.c.applications).order_by(
        grouped.c.program
    )
    return _paged(page, shape), select(func.count()).select_from(grouped)


Grouping = Literal["organization", "program"]
_GROUPED_STATEMENTS = {"organization": _organizations_statements, "program": _programs_statements}


async def _existing(
    session: AsyncSession, key: InstrumentedAttribute[int], ids: Iterable[int]
) -> set[int]:
    """Which of the ids are in the table of `key` (its primary key)."""
    wanted = list(set(ids))
    if not wanted:
        return set()
    return set((await session.execute(select(key).where(key.in_(wanted)))).scalars())


# Built once, parameters bound per call: SQLAlchemy computes a statement object's cache key once.
_GET_APPLICATION = (
    select(Application)
    .options(WITH_APPLICANT)
    .where(Application.number == bindparam("number"))
    .execution_options(populate_existing=True)
)
# An application as a card shows it, with its applicant's and organisation's names.
_GET_VIEW = _from_applications(whole=True).where(Application.number == bindparam("number"))


def _comment_count(number: ColumnElement[int] | InstrumentedAttribute[int]) -> Select[Any]:
    """How many of the application's history rows carry a comment."""
    return (
        select(func.count())
        .select_from(ApplicationEvent)
        .where(ApplicationEvent.application_number == number, ApplicationEvent.comment.is_not(None))
    )


_COUNT_COMMENTS = _comment_count(bindparam("number"))
_GET_CARD = _GET_VIEW.add_columns(
    _comment_count(Application.number).correlate(Application).scalar_subquery().label("comments")
)
# A decision's statements, executed on the session's connection (no ORM entities). The
# parameters' names are not columns' (an UPDATE would take those for its SET clause).
_TRANSITION = (
    update(Application)
    .where(Application.number == bindparam("n"), Application.status == bindparam("expected"))
    .values(status=bindparam("to"), updated_at=bindparam("at"))
)
_TOUCH = (
    update(Application)
    .where(Application.number == bindparam("n"))
    .values(updated_at=bindparam("at"))
)
_CURRENT_STATUS = select(Application.status).where(Application.number == bindparam("number"))
_COUNT_IN_STATUS = (
    select(func.count()).select_from(Application).where(Application.status == bindparam("status"))
)
_COUNT_OF_ORGANIZATION = _COUNT_IN_STATUS.where(
    Application.organization_id == bindparam("organization_id")
)
_ADD_EVENT = insert(ApplicationEvent).returning(ApplicationEvent.id)
_LAST_TRANSITION = (
    select(ApplicationEvent)
    .where(
        ApplicationEvent.application_number == bindparam("number"),
        ApplicationEvent.to_status.is_not(None),
        or_(
            ApplicationEvent.from_status.is_(None),
            ApplicationEvent.from_status != ApplicationEvent.to_status,
        ),
    )
    .order_by(ApplicationEvent.id.desc())
    .limit(1)
)
_DIRECTOR_IDS = (
    select(Account.id)
    .join(AccountRole, AccountRole.account_id == Account.id)
    .where(Account.organization_id == bindparam("organization_id"), AccountRole.role == "director")
    .order_by(Account.id)
)
_STAFF_IDS = (
    select(AccountRole.account_id)
    .where(AccountRole.role == "staff")
    .order_by(AccountRole.account_id)
)
# Where pushes go (LinkRepo.recipients), for a list of accounts bound per call.
_RECIPIENTS = (
    select(
        Binding.account_id,
        Binding.messenger,
        Binding.chat_id,
        Binding.blocked,
        Binding.linked_at,
        Account.muted,
        Account.push_to,
    )
    .join(Account, Account.id == Binding.account_id)
    .where(Binding.account_id.in_(bindparam("ids", expanding=True)))
    .order_by(Binding.account_id, Binding.messenger)
)
_ADD_OUTBOX = insert(OutboxMessage)


@dataclass
class ApplicationRepo:
    session: AsyncSession

    async def get(self, number: int) -> Application | None:
        """The application as it is now (fresh even if this session holds it already)."""
        result = await self.session.execute(_GET_APPLICATION, {"number": number})
        return result.unique().scalar_one_or_none()

    async def view_row(self, number: int, *, comments: bool = False) -> dict[str, Any] | None:
        """The application as a card shows it, as it is now, as plain values named as
        ApplicationView's fields (the card's hot path: no ORM entities); with `comments`, also
        how many of its history rows carry a comment (`comments`, as `count_comments`), in the
        same statement."""
        connection = await connection_of(self.session)
        statement = _GET_CARD if comments else _GET_VIEW
        row = (await connection.execute(statement, {"number": number})).first()
        return row._asdict() if row is not None else None

    async def current_status(self, number: int) -> str | None:
        connection = await connection_of(self.session)
        result = await connection.execute(_CURRENT_STATUS, {"number": number})
        return result.scalar_one_or_none()

    async def transition(self, number: int, expected: str, to: str, now: datetime) -> bool:
        """Conditional update: moves the status only if it is still the expected one."""
        await feed_lock(self.session, shared=True)
        connection = await connection_of(self.session)
        result = await connection.execute(
            _TRANSITION, {"n": number, "expected": expected, "to": to, "at": now}
        )
        return result.rowcount == 1

    async def count(self, *, status: str, organization_id: int | None = None) -> int:
        connection = await connection_of(self.session)
        if organization_id is None:
            result = await connection.execute(_COUNT_IN_STATUS, {"status": status})
        else:
            params = {"status": status, "organization_id": organization_id}
            result = await connection.execute(_COUNT_OF_ORGANIZATION, params)
        return int(result.scalar_one())

    async def existing_numbers(self, numbers: Iterable[int]) -> set[int]:
        wanted = list(set(numbers))
        if not wanted:
            return set()
        result = await self.session.execute(
            select(Application.number).where(Application.number.in_(wanted))
        )
        return set(result.scalars())

    async def add_many(self, rows: list[dict[str, Any]]) -> None:
        """New applications written in one statement (ORM attribute names as keys)."""
        if rows:
            await self.session.execute(insert(Application), rows)

    async def apply_version(self, number: int, version: int, values: dict[str, Any]) -> bool:
        """Conditional update of an application's fields (not its status) from the web module:
        applies only if `version` is newer than the stored one, so an older update never wins."""
        await feed_lock(self.session, shared=True)
        result = await self.session.execute(
            update(Application)
            .where(Application.number == number, Application.version < version)
            .values(version=version, **values)
            .execution_options(synchronize_session=False)
        )
        assert isinstance(result, CursorResult)
        return result.rowcount == 1

    async def count_by_organization(self, *, status: str) -> list[tuple[str, int]]:
        """Applications in one status per organisation (its name), the most first."""
        count = func.count(Application.number)
        result = await self.session.execute(
            select(Organization.name, count)
            .join(Organization, Organization.id == Application.organization_id)
            .where(Application.status == status)
            .group_by(Organization.id, Organization.name)
            .order_by(count.desc(), Organization.name)
        )
        return [(str(name), int(n)) for name, n in result.all()]

    async def oldest_in_status(
        self, *, status: str, organization_id: int, limit: int
    ) -> Sequence[Application]:
        """An organisation's applications in one status, oldest first (the digest's list)."""
        query = (
            select(Application)
            .where(Application.status == status, Application.organization_id == organization_id)
            .order_by(Application.created_at, Application.number)
            .limit(limit)
        )
        return (await self.session.scalars(query)).all()

    async def search(
        self,
        scope: ApplicationScope,
        *,
        status: str | None = None,
        number: int | None = None,
        name: str | None = None,
        organization_id: int | None = None,
        program: str | None = None,
        offset: int = 0,
        limit: int | None = None,
        whole: bool = False,
    ) -> tuple[list[RowMapping], int]:
        """A page of the applications in scope, newest first, and how many match in all: plain
        rows of a list row's columns or, `whole`, of a card's (the export), labelled as
        services.views.ApplicationView's fields.

        `name` matches any part of the applicant's full name, ignoring case and «ё»/«е» (the
        stored folded name); `program` is the whole programme ("" for applications without
        one).

        Every list reads through here (the screens' hot path, the bulk decisions, the export):
        a Core query of the columns shown (no entities, identity map or relationship loading;
        more than half of a list update's time before, docs/BENCHMARKS.md), its statement
        built once per shape (`_ListShape`).
        """
        query = _ListQuery(
            scope, status, number, name, organization_id, program, offset, limit, whole
        )
        params = query.params()
        page, counted = _list_statements(query.shape())
        connection = await connection_of(self.session)
        rows = (await connection.execute(page, params)).mappings().all()
        if rows:
            return list(rows), int(rows[0]["total"])
        if not offset:
            return [], 0
        # Past the end: no row carries the total, so count.
        return [], int(await connection.scalar(counted, params) or 0)

    async def grouped(
        self,
        scope: ApplicationScope,
        by: Grouping,
        *,
        status: str | None = None,
        organization_id: int | None = None,
        program: str | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> tuple[list[tuple[int, str, int]], int]:
        """The applications in scope (of the status, of the organisation, of the programme) by
        organisation — (id, name, how many applications) by name — or by programme — (the
        smallest application number with it, the programme or "" if none, how many) by
        programme; and how many organisations (programmes) in all."""
        query = _ListQuery(
            scope,
            status=status,
            organization_id=organization_id,
            program=program,
            offset=offset,
            limit=limit,
        )
        params = query.params()
        page, counted = _GROUPED_STATEMENTS[by](query.shape())
        connection = await connection_of(self.session)
        total = await connection.scalar(counted, params)
        rows = (await connection.execute(page, params)).tuples().all()
        return [(int(key), name, int(count)) for key, name, count in rows], int(total or 0)

    async def organization_name(self, organization_id: int) -> str | None:
        name: str | None = await self.session.scalar(
            select(Organization.name).where(Organization.id == organization_id)
        )
        return name

    async def touch(self, number: int, now: datetime) -> None:
        await feed_lock(self.session, shared=True)
        connection = await connection_of(self.session)
        await connection.execute(_TOUCH, {"n": number, "at": now})


@dataclass
class AccountRepo:
    session: AsyncSession

    async def get(self, account_id: int) -> Account | None:
        return await self.session.get(Account, account_id)

    async def by_esia_oid(self, esia_oid: str) -> Account | None:
        result = await self.session.execute(select(Account).where(Account.esia_oid == esia_oid))
        return result.scalar_one_or_none()

    async def by_snils_hash(self, snils_hash: str) -> Account | None:
        result = await self.session.execute(select(Account).where(Account.snils_hash == snils_hash))
        return result.scalar_one_or_none()

    async def organization(self, organization_id: int) -> Organization | None:
        return await self.session.get(Organization, organization_id)

    async def director_ids(self, organization_id: int) -> list[int]:
        connection = await connection_of(self.session)
        result = await connection.execute(_DIRECTOR_IDS, {"organization_id": organization_id})
        return list(result.scalars())

    async def staff_ids(self) -> list[int]:
        """Accounts with the role «Сотрудник ЦОПМ / ГБУ ДПО «ЧИРО»»."""
        connection = await connection_of(self.session)
        return list((await connection.execute(_STAFF_IDS)).scalars())

    async def director_ids_by_organization(
        self, organization_ids: Iterable[int]
    ) -> dict[int, list[int]]:
        """director_ids of several organisations in one query."""
        wanted = list(set(organization_ids))
        directors: dict[int, list[int]] = {organization_id: [] for organization_id in wanted}
        if not wanted:
            return directors
        result = await self.session.execute(
            select(Account.organization_id, Account.id)
            .join(AccountRole, AccountRole.account_id == Account.id)
            .where(Account.organization_id.in_(wanted), AccountRole.role == "director")
            .order_by(Account.id)
        )
        for organization_id, account_id in result.tuples():
            assert organization_id is not None
            directors[organization_id].append(account_id)
        return directors

    async def existing_ids(self, account_ids: Iterable[int]) -> set[int]:
        return await _existing(self.session, Account.id, account_ids)

    async def holder_of(
        self, *, esia_oid: str | None = None, snils_hash: str | None = None
    ) -> int | None:
        """The account that holds an ESIA oid or a SNILS hash, if any."""
        column, value = (
            (Account.esia_oid, esia_oid)
            if esia_oid is not None
            else (Account.snils_hash, snils_hash)
        )
        result = await self.session.execute(select(Account.id).where(column == value))
        return result.scalar_one_or_none()


@dataclass
class OrganizationRepo:
    session: AsyncSession

    async def get(self, organization_id: int) -> Organization | None:
        return await self.session.get(Organization, organization_id, populate_existing=True)

    async def existing_ids(self, organization_ids: Iterable[int]) -> set[int]:
        return await _existing(self.session, Organization.id, organization_ids)


@dataclass
class EventRepo:
    session: AsyncSession

    async def add(self, **values: Any) -> ApplicationEvent:
        """A history row, written now; returned as an object the session does not hold (what
        was written, with its id: the row's columns have no defaults to read back)."""
        await feed_lock(self.session, shared=True)
        connection = await connection_of(self.session)
        event_id = (await connection.execute(_ADD_EVENT, values)).scalar_one()
        return ApplicationEvent(id=event_id, **values)

    async def add_many(self, rows: list[dict[str, Any]]) -> None:
        """History rows written in one statement."""
        if rows:
            await feed_lock(self.session, shared=True)
            await self.session.execute(insert(ApplicationEvent), rows)

    async def first_ids(self, numbers: Iterable[int]) -> dict[int, int]:
        """The id of each application's first history row (its «create» row)."""
        wanted = list(set(numbers))
        if not wanted:
            return {}
        result = await self.session.execute(
            select(ApplicationEvent.application_number, func.min(ApplicationEvent.id))
            .where(ApplicationEvent.application_number.in_(wanted))
            .group_by(ApplicationEvent.application_number)
        )
        return {number: event_id for number, event_id in result.tuples()}

    async def for_application(
        self, number: int, *, offset: int = 0, limit: int | None = None
    ) -> Sequence[ApplicationEvent]:
        """History, newest first."""
        query = (
            select(ApplicationEvent)
            .where(ApplicationEvent.application_number == number)
            .order_by(ApplicationEvent.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return (await self.session.scalars(query)).all()

    async def count_for_application(self, number: int) -> int:
        result = await self.session.execute(
            select(func.count())
            .select_from(ApplicationEvent)
            .where(ApplicationEvent.application_number == number)
        )
        return int(result.scalar_one())

    async def get(self, event_id: int) -> ApplicationEvent | None:
        return await self.session.get(ApplicationEvent, event_id)

    async def decisions(self, *, after: int, limit: int) -> Sequence[ApplicationEvent]:
        """Decisions made by people here (not by the web module), oldest first, after an id."""
        await feed_lock(self.session, shared=False)
        query = (
            select(ApplicationEvent)
            .where(
                ApplicationEvent.id > after,
                ApplicationEvent.source != "api",
                ApplicationEvent.actor_role.is_not(None),
            )
            .order_by(ApplicationEvent.id)
            .limit(limit)
        )
        return (await self.session.scalars(query)).all()

    async def comments_for(
        self, number: int, *, offset: int = 0, limit: int | None = None
    ) -> Sequence[ApplicationEvent]:
        """History rows that carry a comment (the comment thread), newest first."""
        query = (
            select(ApplicationEvent)
            .where(
                ApplicationEvent.application_number == number,
                ApplicationEvent.comment.is_not(None),
            )
            .order_by(ApplicationEvent.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return (await self.session.scalars(query)).all()

    async def count_comments(self, number: int) -> int:
        connection = await connection_of(self.session)
        result = await connection.execute(_COUNT_COMMENTS, {"number": number})
        return int(result.scalar_one())

    async def last_transition(self, number: int) -> ApplicationEvent | None:
        """The newest history row that changed the status (who decided, and when)."""
        return (await self.session.scalars(_LAST_TRANSITION, {"number": number})).first()


@dataclass(frozen=True)
class Recipient:
    """What a push to a bound person needs to know: the chat of one of their bindings, and
    whether they muted pushes or blocked the bot in that chat."""

    account_id: int
    messenger: str
    chat_id: int
    muted: bool
    blocked: bool


def pushed_to(push_to: str | None, bound: Sequence[tuple[str, datetime, bool]]) -> set[str]:
    """The messengers a person's pushes go to, of those bound (messenger, linked_at, blocked):
    their choice (`Account.push_to`: one messenger, or PUSH_BOTH), else the messenger bound
    last of those whose chat has not blocked the bot (all blocked: the one bound last, where
    pushes wait); a chosen messenger that is not bound falls back the same way. A chosen one
    stays chosen while blocked: the person said where."""
    if not bound:
        return set()
    messengers = {messenger for messenger, _, _ in bound}
    if push_to == PUSH_BOTH:
        return messengers
    if push_to in messengers:
        return {push_to}
    last = max(bound, key=lambda item: (not item[2], item[1], item[0]))
    return {last[0]}


@dataclass
class LinkRepo:
    """Bindings of accounts to messenger users, one-time link tokens, failed redemptions."""

    session: AsyncSession

    async def recipients(self, account_ids: Iterable[int]) -> list[Recipient]:
        """Where these accounts' pushes go: one Recipient per chat the person chose
        (`pushed_to`), by account id then messenger (only these columns: no accounts loaded)."""
        ids = list(set(account_ids))
        if not ids:
            return []
        connection = await connection_of(self.session)
        rows = (await connection.execute(_RECIPIENTS, {"ids": ids})).tuples().all()
        recipients: list[Recipient] = []
        for account_id in sorted({row[0] for row in rows}):
            own = [row for row in rows if row[0] == account_id]
            chosen = pushed_to(own[0][6], [(row[1], row[4], row[3]) for row in own])
            recipients += [
                Recipient(account_id, messenger, chat_id, muted, blocked)
                for _, messenger, chat_id, blocked, _, muted, _ in own
                if messenger in chosen
            ]
        return recipients

    async def by_user(self, messenger: str, user_id: int) -> Binding | None:
        """The binding of a messenger user, with its account and the account's roles."""
        result = await self.session.execute(
            select(Binding)
            .options(WITH_ACCOUNT)
            .where(Binding.messenger == messenger, Binding.user_id == user_id)
        )
        return result.unique().scalar_one_or_none()

    async def by_accounts(
        self, account_ids: Iterable[int], messenger: str | None = None
    ) -> list[Binding]:
        """The bindings of these accounts (in one messenger, or all), by account then
        messenger."""
        ids = list(account_ids)
        if not ids:
            return []
        query = select(Binding).options(WITH_ACCOUNT).where(Binding.account_id.in_(ids))
        if messenger is not None:
            query = query.where(Binding.messenger == messenger)
        result = await self.session.execute(query.order_by(Binding.account_id, Binding.messenger))
        return list(result.unique().scalars())

    async def of_account(self, account_id: int) -> list[Binding]:
        """Every binding of an account, by messenger."""
        return await self.by_accounts([account_id])

    async def by_account(self, account_id: int, messenger: str) -> Binding | None:
        """The account's binding in one messenger."""
        found = await self.by_accounts([account_id], messenger)
        return found[0] if found else None

    async def by_chat(self, messenger: str, chat_id: int) -> Binding | None:
        """The binding whose chat this is (a push's recipient, checked at send time)."""
        result = await self.session.execute(
            select(Binding)
            .options(WITH_ACCOUNT)
            .where(Binding.messenger == messenger, Binding.chat_id == chat_id)
        )
        return result.unique().scalars().first()

    async def digest_recipients(self) -> list[int]:
        """Accounts of directors who want the daily digest and whose organisation has
        applications «Не обработана»: bound, consent given, not muted, reachable in at least
        one bound messenger."""
        pending_organizations = select(Application.organization_id).where(
            Application.status == "new"
        )
        return await self._digest_readers(
            "director", Account.organization_id.in_(pending_organizations)
        )

    async def staff_digest_recipients(self) -> list[int]:
        """Accounts of staff who want the daily digest while director-approved applications
        wait for «Включить в группу»: bound, consent given, not muted, reachable in at least
        one bound messenger."""
        waiting = select(Application.number).where(Application.status == "approved").limit(1)
        return await self._digest_readers("staff", waiting.exists())

    async def _digest_readers(self, role: str, something_waits: ColumnElement[bool]) -> list[int]:
        reachable = select(Binding.account_id).where(Binding.blocked.is_(False))
        result = await self.session.execute(
            select(Account.id)
            .join(AccountRole, AccountRole.account_id == Account.id)
            .where(
                AccountRole.role == role,
                something_waits,
                Account.id.in_(reachable),
                Account.consent_at.is_not(None),
                Account.digest_enabled.is_(True),
                Account.muted.is_(False),
            )
            .order_by(Account.id)
        )
        return list(result.scalars())

    async def remove(self, binding: Binding) -> None:
        """Delete a binding together with what was kept for its chat: every push for it (still
        waiting, sent or failed: each tells which account the chat belonged to) and the user's
        conversation state in the SQL store, storage/states.py (a search for a name, a comment
        being typed). A Redis store is the caller's to clear. The person's other bindings stay."""
        await self.session.execute(
            delete(OutboxMessage).where(
                OutboxMessage.chat_id == binding.chat_id,
                OutboxMessage.channel == binding.messenger,
            )
        )
        await self.session.execute(
            delete(FsmState).where(
                FsmState.messenger == binding.messenger, FsmState.user_id == binding.user_id
            )
        )
        await self.session.delete(binding)
        await self.session.flush()

    # -- one-time tokens -------------------------------------------------------------------

    async def token_by_hash(self, token_hash: str, kind: str) -> LinkToken | None:
        result = await self.session.execute(
            select(LinkToken).where(LinkToken.token_hash == token_hash, LinkToken.kind == kind)
        )
        return result.scalar_one_or_none()

    async def token_by_id(self, token_id: int) -> LinkToken | None:
        return await self.session.get(LinkToken, token_id, populate_existing=True)

    async def token_by_state_hash(self, state_hash: str) -> LinkToken | None:
        result = await self.session.execute(
            select(LinkToken).where(LinkToken.oidc_state_hash == state_hash)
        )
        return result.scalar_one_or_none()

    async def token_by_browser_key_hash(self, key_hash: str) -> LinkToken | None:
        result = await self.session.execute(
            select(LinkToken).where(LinkToken.browser_key_hash == key_hash)
        )
        return result.scalar_one_or_none()

    async def use_token(self, token_id: int, now: datetime) -> bool:
        """Mark a token used unless it already is: of two concurrent redemptions one wins.

        What the token carried for a sign-in or a question in progress is cleared with it.
        """
        result = await self.session.execute(
            update(LinkToken)
            .where(LinkToken.id == token_id, LinkToken.used_at.is_(None))
            .values(
                used_at=now,
                username=None,
                launched_at=None,
                oidc_state_hash=None,
                oidc_nonce=None,
                oidc_code_verifier=None,
                browser_key_hash=None,
            )
            .execution_options(synchronize_session=False)
        )
        assert isinstance(result, CursorResult)
        return result.rowcount == 1

    async def offer_token(
        self,
        token_id: int,
        *,
        messenger: str,
        user_id: int,
        chat_id: int,
        username: str | None = None,
        move_requested_at: datetime | None = None,
    ) -> bool:
        """Name the messenger user a portal token's open question is about (their switch of
        accounts; with `move_requested_at`, the owner's permission to move the account to
        them). False if the token is used or already claimed for a move: one claim wins."""
        result = await self.session.execute(
            update(LinkToken)
            .where(
                LinkToken.id == token_id,
                LinkToken.used_at.is_(None),
                LinkToken.move_requested_at.is_(None),
            )
            .values(
                messenger=messenger,
                user_id=user_id,
                chat_id=chat_id,
                username=username,
                move_requested_at=move_requested_at,
            )
            .execution_options(synchronize_session="fetch")
        )
        assert isinstance(result, CursorResult)
        return result.rowcount == 1

    async def withdraw_offer(self, token_id: int, *, messenger: str, user_id: int) -> None:
        """The user declined switching to the token's account: the token is free again."""
        await self.session.execute(
            update(LinkToken)
            .where(
                LinkToken.id == token_id,
                LinkToken.kind == "portal",
                LinkToken.messenger == messenger,
                LinkToken.user_id == user_id,
                LinkToken.move_requested_at.is_(None),
            )
            .values(messenger=None, user_id=None, chat_id=None)
            .execution_options(synchronize_session="fetch")
        )

    async def move_requests(self, *, account_id: int) -> Sequence[LinkToken]:
        """The open requests to move an account's binding to another messenger user."""
        result = await self.session.scalars(
            select(LinkToken)
            .where(
                LinkToken.account_id == account_id,
                LinkToken.move_requested_at.is_not(None),
                LinkToken.used_at.is_(None),
            )
            .order_by(LinkToken.id)
        )
        return result.all()

    async def expired_move_requests(self, now: datetime) -> Sequence[LinkToken]:
        result = await self.session.scalars(
            select(LinkToken)
            .where(
                LinkToken.move_requested_at.is_not(None),
                LinkToken.used_at.is_(None),
                LinkToken.expires_at <= now,
            )
            .order_by(LinkToken.id)
        )
        return result.all()

    async def end_move_requests(self, messenger: str, user_id: int, now: datetime) -> None:
        """A messenger user got bound: their requests to move other accounts to them end."""
        await self.session.execute(
            update(LinkToken)
            .where(
                LinkToken.messenger == messenger,
                LinkToken.user_id == user_id,
                LinkToken.move_requested_at.is_not(None),
                LinkToken.used_at.is_(None),
            )
            .values(used_at=now, username=None)
            .execution_options(synchronize_session=False)
        )

    async def delete_unused_tokens(
        self,
        *,
        account_id: int | None = None,
        user: tuple[str, int] | None = None,
        messenger: str | None = None,
    ) -> None:
        """Revoke the unused tokens minted for an account (with `messenger`: only those offered
        to a user of that messenger; a portal token not redeemed yet is no messenger's), or the
        bot-first ones a messenger user, (messenger, user id), asked for (a portal token merely
        offered to that user for a switch stays the account's)."""
        if account_id is not None:
            condition = LinkToken.account_id == account_id
            if messenger is not None:
                condition = and_(condition, LinkToken.messenger == messenger)
        else:
            assert user is not None
            messenger, user_id = user
            condition = and_(
                LinkToken.messenger == messenger,
                LinkToken.user_id == user_id,
                LinkToken.kind == "bot",
            )
        await self.session.execute(delete(LinkToken).where(condition, LinkToken.used_at.is_(None)))

    async def purge_tokens(self, expired_before: datetime) -> None:
        await self.session.execute(delete(LinkToken).where(LinkToken.expires_at < expired_before))

    # -- failed redemptions (throttling) ---------------------------------------------------

    async def add_failure(self, messenger: str, user_id: int, now: datetime) -> None:
        self.session.add(LinkFailure(messenger=messenger, user_id=user_id, created_at=now))
        await self.session.flush()

    async def count_failures(self, messenger: str, user_id: int, since: datetime) -> int:
        result = await self.session.execute(
            select(func.count())
            .select_from(LinkFailure)
            .where(
                LinkFailure.messenger == messenger,
                LinkFailure.user_id == user_id,
                LinkFailure.created_at > since,
            )
        )
        return int(result.scalar_one())

    async def count_all_failures(self, since: datetime) -> int:
        result = await self.session.execute(
            select(func.count()).select_from(LinkFailure).where(LinkFailure.created_at > since)
        )
        return int(result.scalar_one())

    async def purge_failures(self, messenger: str, user_id: int, before: datetime) -> None:
        await self.session.execute(
            delete(LinkFailure).where(
                LinkFailure.messenger == messenger,
                LinkFailure.user_id == user_id,
                LinkFailure.created_at <= before,
            )
        )


@dataclass
class OutboxRepo:
    session: AsyncSession

    def add(self, **values: Any) -> OutboxMessage:
        """A message, written with the transaction; its commit wakes the channel's
        dispatchers (storage/outbox_signal.py)."""
        message = OutboxMessage(**values)
        self.session.add(message)
        outbox_signal.written(self.session, message.channel)
        return message

    async def add_many(self, rows: list[dict[str, Any]]) -> None:
        """Messages written in one statement, in the order of `rows` (their commit wakes the
        dispatchers, as `add`)."""
        if rows:
            if any(isinstance(pending, OutboxMessage) for pending in self.session.new):
                await self.session.flush()  # rows added before (`add`) keep coming first
            connection = await connection_of(self.session)
            await connection.execute(_ADD_OUTBOX, rows)
            for channel in {row["channel"] for row in rows}:
                outbox_signal.written(self.session, channel)

    async def pending_stats(self) -> dict[str, tuple[int, datetime | None]]:
        """Per channel: how many messages wait and when the oldest of them was written."""
        result = await self.session.execute(
            select(OutboxMessage.channel, func.count(), func.min(OutboxMessage.created_at))
            .where(OutboxMessage.state == "pending")
            .group_by(OutboxMessage.channel)
        )
        return {channel: (int(count), oldest) for channel, count, oldest in result.tuples()}

    async def drop_pending(self, *, channel: str, chat_id: int, kind: str) -> None:
        """Forget messages of one kind still waiting for a messenger's chat."""
        await self.session.execute(
            delete(OutboxMessage).where(
                OutboxMessage.chat_id == chat_id,
                OutboxMessage.channel == channel,
                OutboxMessage.kind == kind,
                OutboxMessage.state.in_(("pending", "held")),
            )
        )


@dataclass
class Repositories:
    """Every repository over one session (one transaction per update or request)."""

    session: AsyncSession
    applications: ApplicationRepo = field(init=False)
    accounts: AccountRepo = field(init=False)
    organizations: OrganizationRepo = field(init=False)
    events: EventRepo = field(init=False)
    links: LinkRepo = field(init=False)
    outbox: OutboxRepo = field(init=False)

    def __post_init__(self) -> None:
        self.applications = ApplicationRepo(self.session)
        self.accounts = AccountRepo(self.session)
        self.organizations = OrganizationRepo(self.session)
        self.events = EventRepo(self.session)
        self.links = LinkRepo(self.session)
        self.outbox = OutboxRepo(self.session)
