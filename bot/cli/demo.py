"""`python -m bot demo`: a demo set for a first try, loaded through the same upserts as the API.

Three schools of Челябинская область, their directors and teachers, a regional staff member and
30 applications of the first school in every status, with programmes and dates like the seed
instruction's. The people are invented. Loading again changes nothing (the upserts are
idempotent); each run prints fresh one-time links for the demo director and the demo applicant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from bot.settings import Settings
from bot.texts import cli
from services import integration
from services.clock import Clock, SystemClock
from services.domain import Role, Source, Status
from services.integration import AccountData, ApplicationData, OrganizationData
from services.linking import mint_portal_token
from storage.db import create_engine, create_session_factory
from storage.migrate import upgrade
from storage.repositories import Repositories

DEMO_SCHOOL = 7_400_015

ORGANIZATIONS = {
    DEMO_SCHOOL: ("МАОУ «Средняя общеобразовательная школа № 15 г. Челябинска»", "г. Челябинск"),
    7_400_213: ("МБОУ «Гимназия № 2» Копейского городского округа", "Копейский городской округ"),
    7_400_318: ("МОУ «Лицей № 18» г. Миасса", "Миасский городской округ"),
}

DIRECTOR_ID = 9_000_001
APPLICANT_ID = 9_000_011
STAFF_ID = 9_000_100

# (account id, ФИО, organisation, roles)
PEOPLE: tuple[tuple[int, str, int | None, tuple[Role, ...]], ...] = (
    (DIRECTOR_ID, "Соколова Ирина Владимировна", DEMO_SCHOOL, (Role.DIRECTOR,)),
    (9_000_002, "Лебедев Андрей Николаевич", 7_400_213, (Role.DIRECTOR, Role.LISTENER)),
    (9_000_003, "Гаврилова Татьяна Сергеевна", 7_400_318, (Role.DIRECTOR,)),
    (APPLICANT_ID, "Кравцова Юлия Олеговна", DEMO_SCHOOL, (Role.LISTENER,)),
    (9_000_012, "Байбородова Александра Юрьевна", DEMO_SCHOOL, (Role.LISTENER,)),
    (9_000_013, "Морозов Игорь Викторович", DEMO_SCHOOL, (Role.LISTENER,)),
    (9_000_014, "Шарипова Гульнара Рашидовна", DEMO_SCHOOL, (Role.LISTENER,)),
    (9_000_015, "Пономарёв Денис Алексеевич", DEMO_SCHOOL, (Role.LISTENER,)),
    (9_000_016, "Ефимова Наталья Петровна", DEMO_SCHOOL, (Role.LISTENER,)),
    (9_000_017, "Зайцева Марина Геннадьевна", DEMO_SCHOOL, (Role.LISTENER,)),
    (9_000_018, "Хабибуллин Руслан Ильдарович", DEMO_SCHOOL, (Role.LISTENER,)),
    (9_000_021, "Тимофеева Ольга Александровна", 7_400_213, (Role.LISTENER,)),
    (9_000_031, "Никифоров Павел Егорович", 7_400_318, (Role.LISTENER,)),
    (STAFF_ID, "Иванова Ольга Николаевна", None, (Role.STAFF,)),
)
APPLICANTS = [pid for pid, _, org, roles in PEOPLE if org == DEMO_SCHOOL and Role.LISTENER in roles]

CHIRO = "ГБУ ДПО «Челябинский институт развития образования»"
CENTRE = (
    "Областное государственное бюджетное учреждение «Челябинский центр оценки "
    "профессионального мастерства и квалификаций педагогов»"
)

# (programme, group, DPO organisation, study form, listener categories, competencies)
PROGRAMMES: tuple[tuple[str, str, str, str | None, str | None, str | None], ...] = (
    (
        "Диагностика личностно профессионального развития участников кадрового резерва "
        "руководителей образовательных организаций в системе образования Челябинской области",
        "Диагностика. Кадровый резерв руководителей",
        CENTRE,
        None,
        None,
        None,
    ),
    (
        "Экспертная деятельность в сфере оценки качества образования (олимпиады)",
        "Эксперты олимпиад. Поток 2",
        CHIRO,
        "Очная",
        "Учителя общеобразовательных организаций",
        "Оценка олимпиадных работ обучающихся",
    ),
    (
        "Цифровая трансформация как фактор развития информационно-управленческой культуры "
        "руководства образовательной организацией",
        "Цифровая трансформация. Управленческие команды",
        CHIRO,
        "Очно-заочная с применением дистанционных образовательных технологий",
        "Руководители и заместители руководителей ОО",
        "Управление цифровой образовательной средой",
    ),
    (
        "Оценка профессиональных компетенций педагогов: предметная область «Математика»",
        "Оценка компетенций. Математика",
        CENTRE,
        "Заочная с применением дистанционных образовательных технологий",
        "Учителя математики",
        "Предметные и методические компетенции",
    ),
    (
        "Формирование функциональной грамотности обучающихся основной школы",
        "Функциональная грамотность. Группа 5",
        CHIRO,
        "Очная",
        "Учителя основной школы",
        None,
    ),
)

# 30 applications of the demo school: 12 new, 8 approved, 6 included, 4 cancelled.
STATUSES = (
    [Status.NEW] * 12 + [Status.APPROVED] * 8 + [Status.INCLUDED] * 6 + [Status.CANCELLED] * 4
)
FIRST_NUMBER = 39_715


@dataclass(frozen=True)
class DemoSet:
    organizations: int
    accounts: int
    applications: int
    director_id: int
    director_name: str
    applicant_id: int
    applicant_name: str
    school_name: str


def applications(now: datetime) -> list[tuple[int, ApplicationData]]:
    """The 30 applications, spread over the teachers, programmes and the coming weeks."""
    today = now.date()
    items = []
    for index, status in enumerate(STATUSES):
        program, group, dpo, form, categories, competencies = PROGRAMMES[index % len(PROGRAMMES)]
        start = _next_monday(today) + timedelta(weeks=index % 6 + 1)
        items.append(
            (
                FIRST_NUMBER + index,
                ApplicationData(
                    applicant_id=APPLICANTS[index % len(APPLICANTS)],
                    organization_id=DEMO_SCHOOL,
                    program=program,
                    group=group,
                    description=None,
                    study_from=start,
                    study_to=start + timedelta(days=4),
                    study_form=form,
                    listener_categories=categories,
                    competencies=competencies,
                    dpo_organization=dpo,
                    status=status,
                    version=1,
                    created_at=now - timedelta(days=30 - index, hours=index % 7),
                ),
            )
        )
    return items


def _next_monday(day: date) -> date:
    return day + timedelta(days=(7 - day.weekday()) % 7 or 7)


async def load_demo(repo: Repositories, *, clock: Clock) -> DemoSet:
    """Write the demo set in the caller's transaction (no pushes: nobody is linked yet)."""
    now = clock.now()
    for org_id, (name, municipality) in ORGANIZATIONS.items():
        data = OrganizationData(name=name, municipality=municipality)
        await integration.upsert_organization(repo, org_id, data, now=now)
    for account_id, full_name, school, roles in PEOPLE:
        account = AccountData(full_name=full_name, organization_id=school, roles=list(roles))
        await integration.upsert_account(repo, account_id, account, snils_key=None, now=now)
    items = applications(now)
    for number, application in items:
        await integration.upsert_application(
            repo, number, application, now=now, source=Source.CLI, notify=False
        )
    names = {pid: name for pid, name, _, _ in PEOPLE}
    return DemoSet(
        organizations=len(ORGANIZATIONS),
        accounts=len(PEOPLE),
        applications=len(items),
        director_id=DIRECTOR_ID,
        director_name=names[DIRECTOR_ID],
        applicant_id=APPLICANT_ID,
        applicant_name=names[APPLICANT_ID],
        school_name=ORGANIZATIONS[DEMO_SCHOOL][0],
    )


async def run_demo(settings: Settings) -> int:
    """The command: load the demo set into the configured database and print the links."""
    from bot.cli.main import bot_links

    links = await bot_links(settings)
    if links is None:
        return 1
    clock = SystemClock()
    ttl = timedelta(seconds=settings.LINK_TOKEN_TTL)
    engine = create_engine(settings.DATABASE_URL)
    try:
        await upgrade(engine)
        async with create_session_factory(engine)() as session:
            repo = Repositories(session)
            demo = await load_demo(repo, clock=clock)
            director = await mint_portal_token(repo, demo.director_id, ttl=ttl, clock=clock)
            applicant = await mint_portal_token(repo, demo.applicant_id, ttl=ttl, clock=clock)
            await session.commit()
    finally:
        await engine.dispose()
    print(
        cli.DEMO_LOADED.format(
            organizations=demo.organizations,
            accounts=demo.accounts,
            applications=demo.applications,
            director=demo.director_name,
            school=demo.school_name,
            director_link="\n".join(build(director.token) for build in links.values()),
            applicant=demo.applicant_name,
            applicant_link="\n".join(build(applicant.token) for build in links.values()),
            ttl_minutes=settings.LINK_TOKEN_TTL // 60,
        )
    )
    return 0
