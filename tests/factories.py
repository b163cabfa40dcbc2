"""Test data: organisations, people and applications like the seed instruction's."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Account, AccountRole, Application, Organization, TelegramLink

T0 = datetime(2026, 9, 1, 6, 0, tzinfo=UTC)

PROGRAM = (
    "Диагностика личностно профессионального развития участников кадрового резерва "
    "руководителей образовательных организаций в системе образования Челябинской области "
    "на период 2023 – 2024 гг."
)


def organization(org_id: int, name: str | None = None) -> Organization:
    return Organization(
        id=org_id,
        name=name or f"МАОУ «СОШ № {org_id}» г. Челябинска",
        municipality="г. Челябинск",
        updated_at=T0,
    )


def account(account_id: int, full_name: str, organization_id: int | None, *roles: str) -> Account:
    return Account(
        id=account_id,
        full_name=full_name,
        organization_id=organization_id,
        updated_at=T0,
        roles=[AccountRole(role=role) for role in roles],
    )


def application(
    number: int, applicant_id: int, organization_id: int, status: str = "new", **fields: object
) -> Application:
    values: dict[str, object] = {
        "program": PROGRAM,
        "group": "Диагностика. Кадровый резерв руководителей",
        "study_from": date(2023, 9, 6),
        "study_to": date(2023, 9, 10),
        "dpo_organization": "ОГБУ «Челябинский центр оценки профессионального мастерства и "
        "квалификаций педагогов»",
        "created_at": T0,
        "updated_at": T0,
        "version": 1,
    }
    values.update(fields)
    return Application(
        number=number,
        applicant_id=applicant_id,
        organization_id=organization_id,
        status=status,
        **values,
    )


def link(account_id: int, telegram_user_id: int, role: str, consent: bool = True) -> TelegramLink:
    return TelegramLink(
        account_id=account_id,
        telegram_user_id=telegram_user_id,
        chat_id=telegram_user_id,
        active_role=role,
        consent_at=T0 if consent else None,
        consent_version="1" if consent else None,
        muted=False,
        digest_enabled=True,
        blocked=False,
        linked_at=T0,
    )


async def seed_school(session: AsyncSession) -> None:
    """Two schools, their directors, applicants and a regional staff member, all linked.

    Accounts: 1 director of org 10 (also a listener), 2 second director of org 10,
    3 and 4 applicants of org 10, 5 director of org 20, 6 applicant of org 20, 7 staff.
    Telegram user ids are the account id + 1000.
    """
    session.add_all([organization(10), organization(20)])
    await session.flush()
    session.add_all(
        [
            account(1, "Петров Пётр Петрович", 10, "director", "listener"),
            account(2, "Сидорова Анна Ивановна", 10, "director"),
            account(3, "Войсковая Юлия Олеговна", 10, "listener"),
            account(4, "Байдуганова Александра Юрьевна", 10, "listener"),
            account(5, "Морозов Игорь Викторович", 20, "director"),
            account(6, "Кузнецова Мария Сергеевна", 20, "listener"),
            account(7, "Иванова Ольга Николаевна", None, "staff"),
        ]
    )
    await session.flush()
    roles = {1: "director", 2: "director", 3: "listener", 4: "listener", 5: "director"}
    roles |= {6: "listener", 7: "staff"}
    session.add_all(
        [link(account_id, account_id + 1000, role) for account_id, role in roles.items()]
    )
    await session.flush()
