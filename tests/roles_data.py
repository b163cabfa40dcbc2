"""Test data of the applicant's and staff's scenarios, over the director's (tests.director_data):
organisation 20 gets director-approved applications in other programmes, so that staff have
applications of both organisations and of several programmes to filter."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import Application
from tests import factories
from tests.director_data import seed_applications

STAFF = 1007  # Иванова Ольга Николаевна, «Сотрудник ЦОПМ / ГБУ ДПО «ЧИРО»» (account 7)
OTHER_LISTENER = 1006  # Кузнецова Мария Сергеевна, applicant of organisation 20 (account 6)

# Войсковая Юлия Олеговна's (account 3, tests.director_data.LISTENER) applications by status.
OWN = {
    "new": [39737, 39735, 39733, 39731],
    "approved": [39739],
    "cancelled": [39741],
    "included": [39743],
}
OWN_NUMBERS = sorted((n for numbers in OWN.values() for n in numbers), reverse=True)
SOMEONE_ELSES = 39738  # Байдуганова's (account 4), approved, organisation 10

EXPERT = "Экспертная деятельность в сфере оценки качества образования (олимпиады)"
DIGITAL = (
    "Цифровая трансформация как фактор развития информационно-управленческой культуры "
    "руководства образовательной организацией"
)
# Director-approved applications, newest first: three of each organisation.
APPROVED_20 = [40004, 40003, 40002]  # no programme, DIGITAL, EXPERT (Кузнецова's)
APPROVED_10 = [39740, 39739, 39738]  # factories.PROGRAM twice, EXPERT (39738)
APPROVED = APPROVED_20 + APPROVED_10


async def seed_roles(session_factory: async_sessionmaker[AsyncSession]) -> None:
    await seed_applications(session_factory)
    async with session_factory() as session:
        created = factories.T0 + timedelta(minutes=20)
        for minutes, (number, program) in enumerate(
            [(40002, EXPERT), (40003, DIGITAL), (40004, None)]
        ):
            session.add(
                factories.application(
                    number,
                    6,
                    20,
                    "approved",
                    program=program,
                    created_at=created + timedelta(minutes=minutes),
                )
            )
        await session.execute(
            update(Application).where(Application.number == 39738).values(program=EXPERT)
        )
        await session.commit()
