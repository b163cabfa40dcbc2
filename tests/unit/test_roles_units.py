"""The pure and query parts of the applicant's and staff's screens: choices follow visibility,
role texts follow the notification routing, callback data and screens stay within Telegram's
limits."""

from __future__ import annotations

from collections import Counter

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.conversation.intents import (
    AppAction,
    AppIntent,
    Facet,
    FacetAction,
    FacetIntent,
    ListFilter,
    StatusCode,
    decode,
)
from bot.screens import applications as screens
from bot.texts import applications as t
from services.domain import Role
from services.notifications import recipients_for
from services.queries import (
    Choice,
    Narrowing,
    Page,
    list_applications,
    organization_choices,
    program_choices,
)
from storage.repositories import Repositories
from tests import factories
from tests.fakes.bot_api import parse_html
from tests.unit.test_director_units import actors

APPLICATIONS = {  # number: (applicant, organisation, programme)
    500: (3, 10, "Б"),
    501: (4, 10, "А"),
    502: (6, 20, "А"),
    503: (1, 10, None),
    504: (6, 20, ""),
    505: (3, 10, "А"),
}


async def test_choices_are_of_what_the_actor_may_see(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    async with session_factory() as session:
        await factories.seed_school(session)
        for number, (applicant, org, program) in APPLICATIONS.items():
            session.add(factories.application(number, applicant, org, program=program))
        await session.commit()
        repo = Repositories(session)
        for actor in actors():
            visible = (await list_applications(repo, actor, status=None, size=100)).items
            organizations = await organization_choices(repo, actor, status=None, size=100)
            assert {c.key: c.applications for c in organizations.items} == dict(
                Counter(a.organization_id for a in visible)
            ), actor
            programs = await program_choices(repo, actor, status=None, size=100)
            assert {c.name: c.applications for c in programs.items} == dict(
                Counter(a.program or "" for a in visible)  # no programme and "" are one choice
            ), actor
            for choice in programs.items:  # the key is an application with that programme
                carrier = await repo.applications.get(choice.key)
                assert carrier is not None
                assert (carrier.program or "") == choice.name

        staff = next(a for a in actors() if a.role is Role.STAFF and Role.STAFF in a.roles)
        of_10 = await program_choices(
            repo, staff, status=None, narrowing=Narrowing(organization_id=10)
        )
        assert [(c.name, c.key, c.applications) for c in of_10.items] == [
            ("", 503, 1),
            ("А", 501, 2),
            ("Б", 500, 1),
        ]
        of_a = await organization_choices(
            repo, staff, status=None, narrowing=Narrowing(program="А")
        )
        assert [(c.key, c.applications) for c in of_a.items] == [(10, 2), (20, 1)]
        listed = await list_applications(
            repo, staff, status=None, narrowing=Narrowing(organization_id=10, program="")
        )
        assert [a.number for a in listed.items] == [503]


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


def test_callback_data_of_staff_fits_64_bytes_at_its_largest() -> None:
    facet = FacetIntent(
        action=FacetAction.CHOOSE,
        facet=Facet.ORGANIZATION,
        choice=-(2**63),
        page=100_000,
        status_filter=ListFilter.ALL,
        search=True,
        narrowed=True,
    )
    assert len(facet.pack().encode()) <= 64
    card = AppIntent(
        action=AppAction.INCLUDE_NO_COMMENT,
        number=2**63 - 1,
        page=100_000,
        status=StatusCode.APPROVED,
        status_filter=ListFilter.ALL,
        list_page=100_000,
        search=True,
        narrowed=True,
    )
    assert len(card.pack().encode()) <= 64
    assert card.back_to_list().narrowed is True
    assert decode(facet.pack()) == facet


def test_choices_screen_numbers_across_pages_and_fits_telegrams_limit() -> None:
    long = "Программа «развития» & <компетенций> " * 100
    items = [Choice(key=1000 + i, name=f"{i} {long}", applications=i) for i in range(8)]
    page = Page(items=items, index=1, pages=3, total=20)
    shown = FacetIntent(action=FacetAction.CHOOSE, facet=Facet.PROGRAM, page=1, narrowed=True)
    screen = screens.facet_choices(
        Facet.PROGRAM,
        page,
        shown,
        current_choice=items[2].name,
        narrowed=screens.Narrowed(organization="О" * 600, program=items[2].name),
    )
    text, _ = parse_html(screen.text)  # as Telegram counts it: whole HTML, within 4096
    assert len(text) <= 4096
    assert "\n\n9. 0 Программа «развития» & <компетенций>" in text
    labels = [button.label for button in screen.buttons()]
    assert labels[0].startswith("9. 0 Программа")
    assert labels[0].endswith("… · 0")
    assert labels[2].startswith("• 11. 2 Программа")
    assert all(len(label) <= 60 for label in labels[:8])
    assert labels[8:] == ["◀", "2/3", "▶", "Все программы", "◀ К списку"]
