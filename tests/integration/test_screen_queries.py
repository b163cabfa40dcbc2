"""The query parts of the application screens, on a real database (SQLite, and PostgreSQL when
set): lists follow visibility and are paged newest first, staff's choices count what the actor
may see (in the database's order), role texts follow the notification routing. Their pure parts
are in tests/unit/test_director_units.py and tests/unit/test_roles_units.py."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.texts import applications as t
from services import integration
from services.applications import ref
from services.domain import Actor, Role, Status, can_view
from services.notifications import recipients_for
from services.queries import (
    Narrowing,
    Search,
    choices,
    list_rows,
    visibility,
    visible_view,
)
from storage.models import Account
from storage.repositories import Repositories
from tests import factories
from tests.unit.test_director_units import actors

APPLICATIONS = {500: (3, 10), 501: (4, 10), 502: (6, 20), 503: (1, 10)}  # number: (applicant, org)

PROGRAMMES = {  # number: (applicant, organisation, programme)
    500: (3, 10, "Б"),
    501: (4, 10, "А"),
    502: (6, 20, "А"),
    503: (1, 10, None),
    504: (6, 20, ""),
    505: (3, 10, "А"),
}


async def test_list_visibility_is_what_can_view_allows(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    async with session_factory() as session:
        await factories.seed_school(session)
        for number, (applicant, org) in APPLICATIONS.items():
            session.add(factories.application(number, applicant, org))
        await session.commit()
        repo = Repositories(session)
        applications = [await repo.applications.get(number) for number in APPLICATIONS]
        for actor in actors():
            page = await list_rows(repo, actor, status=None, size=100)
            listed = {application.number for application in page.items}
            allowed = {a.number for a in applications if a and can_view(actor, ref(a))}
            assert listed == allowed, (actor, visibility(actor))
            # The export's rows are the same list, each as its card shows it.
            whole = await list_rows(repo, actor, status=None, size=100, whole=True)
            assert [row.number for row in whole.items] == [row.number for row in page.items]
            for row in whole.items:
                assert row == await visible_view(repo, actor, row.number)


async def test_pages_are_clamped_and_newest_first(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    async with session_factory() as session:
        await factories.seed_school(session)
        for i in range(13):
            created = factories.T0.replace(minute=i)
            session.add(factories.application(600 + i, 3, 10, created_at=created))
        await session.commit()
        repo = Repositories(session)
        director = Actor(1, "Петров Пётр Петрович", Role.DIRECTOR, frozenset(Role), 10)
        first = await list_rows(repo, director, status=Status.NEW)
        assert (first.index, first.pages, first.total) == (0, 3, 13)
        assert [a.number for a in first.items] == [612, 611, 610, 609, 608, 607]
        beyond = await list_rows(repo, director, status=Status.NEW, page=99)
        assert (beyond.index, [a.number for a in beyond.items]) == (2, [600])
        empty = await list_rows(repo, director, status=Status.INCLUDED, page=5)
        assert (empty.index, empty.pages, empty.total, list(empty.items)) == (0, 1, 0, [])


async def test_choices_are_of_what_the_actor_may_see(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    async with session_factory() as session:
        await factories.seed_school(session)
        for number, (applicant, org, program) in PROGRAMMES.items():
            session.add(factories.application(number, applicant, org, program=program))
        await session.commit()
        repo = Repositories(session)
        for actor in actors():
            visible = (await list_rows(repo, actor, status=None, size=100)).items
            organizations = await choices(repo, actor, "organization", status=None, size=100)
            assert {c.key: c.applications for c in organizations.items} == dict(
                Counter(a.organization_id for a in visible)
            ), actor
            programs = await choices(repo, actor, "program", status=None, size=100)
            assert {c.name: c.applications for c in programs.items} == dict(
                Counter(a.program or "" for a in visible)  # no programme and "" are one choice
            ), actor
            for choice in programs.items:  # the key is an application with that programme
                carrier = await repo.applications.get(choice.key)
                assert carrier is not None
                assert (carrier.program or "") == choice.name

        staff = next(a for a in actors() if a.role is Role.STAFF and Role.STAFF in a.roles)
        of_10 = await choices(
            repo, staff, "program", status=None, narrowing=Narrowing(organization_id=10)
        )
        assert [(c.name, c.key, c.applications) for c in of_10.items] == [
            ("", 503, 1),
            ("А", 501, 2),
            ("Б", 500, 1),
        ]
        of_a = await choices(
            repo, staff, "organization", status=None, narrowing=Narrowing(program="А")
        )
        assert [(c.key, c.applications) for c in of_a.items] == [(10, 2), (20, 1)]
        listed = await list_rows(
            repo, staff, status=None, narrowing=Narrowing(organization_id=10, program="")
        )
        assert [a.number for a in listed.items] == [503]


async def test_a_name_search_compares_the_folded_name_every_writer_stores(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """accounts.name_folded is written with the name by the ORM (the API's PUT and the import
    go through integration.upsert_account: creation and renaming) and by a Core insert of
    plain rows (the benchmark's generator); search compares it, ignoring case and «ё»/«е»,
    across every application (staff) and within an organisation (a director), for a list's
    rows and for the export's whole rows alike."""
    director = Actor(1, "Петров Пётр Петрович", Role.DIRECTOR, frozenset(Role), 10)
    staff = Actor(7, "Иванова Ольга Николаевна", Role.STAFF, frozenset({Role.STAFF}), None)
    async with session_factory() as session:
        await factories.seed_school(session)
        repo = Repositories(session)
        person = integration.AccountData(
            full_name="ЁЛКИНА Алёна Петровна", organization_id=10, roles=[Role.LISTENER]
        )
        await integration.upsert_account(repo, 40, person, snils_key=None, now=factories.T0)
        await session.execute(
            insert(Account),
            [
                {
                    "id": 41,
                    "full_name": "Straße Ёжиков",
                    "organization_id": 20,
                    "updated_at": factories.T0,
                }
            ],
        )
        for number, applicant, org in ((700, 40, 10), (701, 41, 20), (702, 3, 10)):
            session.add(factories.application(number, applicant, org))
        await session.commit()
        folded = dict(
            (await session.execute(select(Account.id, Account.name_folded))).tuples().all()
        )
        assert folded[40] == "елкина алена петровна"
        assert folded[41] == "strasse ежиков"
        assert folded[3] == "войсковая юлия олеговна"

        async def found(actor: Actor, text: str) -> tuple[list[int], list[int]]:
            search = Search(text)
            rows = await list_rows(repo, actor, status=None, search=search, size=100)
            whole = await list_rows(repo, actor, status=None, search=search, size=100, whole=True)
            return [a.number for a in rows.items], [a.number for a in whole.items]

        for text, by_director, by_staff in [
            ("елкина", [700], [700]),
            ("алЕна", [700], [700]),
            ("Ёжик", [], [701]),
            ("STRASSE", [], [701]),
            ("ЮЛИЯ", [702], [702]),
            ("а_ё", [], []),  # LIKE's wildcards are plain characters
            ("%", [], []),
        ]:
            assert await found(director, text) == (by_director, by_director), text
            assert await found(staff, text) == (by_staff, by_staff), text

        renamed = person.model_copy(update={"full_name": "Иванова Алёна Петровна"})
        await integration.upsert_account(repo, 40, renamed, snils_key=None, now=factories.T0)
        await session.commit()
        assert await found(staff, "елкина") == ([], [])
        assert await found(director, "иванова ал") == ([700], [700])


async def test_role_texts_name_who_is_notified(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    """«Заявитель получит уведомление» and the like say what services.notifications does."""
    async with session_factory() as session:
        await factories.seed_school(session)
        session.add(factories.application(900, 3, 10))
        await session.commit()
        repo = Repositories(session)
        application = await repo.applications.get(900)
        assert application is not None
        for role in Role:
            recipients = set(await recipients_for(repo, application, role, actor_id=99))
            applicant, directors = 3 in recipients, bool(recipients & {1, 2})
            for texts in (t.NOTIFIED, t.FOR_WHOM, t.COMMENT_READERS, t.SENT_TO):
                assert ("аявител" in texts[role]) is applicant, (role, texts[role])
                assert ("уководител" in texts[role]) is directors, (role, texts[role])
