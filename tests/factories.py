"""Test data: organisations, people and applications like the seed instruction's."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.notifications import notify_new_application
from services.outbox import new_row
from storage.models import (
    Account,
    AccountRole,
    Application,
    ApplicationEvent,
    Binding,
    Organization,
    OutboxMessage,
)
from storage.repositories import Repositories

T0 = datetime(2026, 9, 1, 6, 0, tzinfo=UTC)

# The people of the tests are named by their Telegram user id (the account id + 1000 for the
# seeded ones, 2000 for a stranger); in MAX the same person has another user id and a dialog
# whose id is neither (MAX keeps them apart), so that nothing can pass for the other.
MAX_USERS = 7_000_000
MAX_DIALOGS = 90_000_000


def user_id_of(person: int, messenger: str = "telegram") -> int:
    """The person's user id in the messenger."""
    return person if messenger == "telegram" else MAX_USERS + person


def chat_id_of(person: int, messenger: str = "telegram") -> int:
    """The person's chat with the bot in the messenger (Telegram's private chat id is the user
    id; MAX's dialog has its own)."""
    return person if messenger == "telegram" else MAX_DIALOGS + person


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


def account(
    account_id: int,
    full_name: str,
    organization_id: int | None,
    *roles: str,
    active_role: str | None = None,
    consent: bool = False,
) -> Account:
    """An account as the web module sent it; `active_role` and `consent` as after a binding
    in which the person accepted the consent."""
    return Account(
        id=account_id,
        full_name=full_name,
        organization_id=organization_id,
        updated_at=T0,
        roles=[AccountRole(role=role) for role in roles],
        active_role=active_role,
        consent_at=T0 if consent else None,
        consent_version="1" if consent else None,
        muted=False,
        digest_enabled=True,
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


def web_event(
    action: str, from_status: str | None, to_status: str | None, created_at: datetime = T0
) -> ApplicationEvent:
    """A history row of application 39744 the web module wrote: its actor, source «api»."""
    return ApplicationEvent(
        id=1,
        application_number=39744,
        actor_name="Модуль «Организация ДПО»",
        action=action,
        from_status=from_status,
        to_status=to_status,
        source="api",
        created_at=created_at,
    )


def binding(
    account_id: int,
    user_id: int,
    *,
    messenger: str = "telegram",
    chat_id: int | None = None,
    blocked: bool = False,
) -> Binding:
    """The binding of a messenger user to an account; the chat is the user's own (Telegram's
    private chat id is the user id) unless given."""
    return Binding(
        account_id=account_id,
        messenger=messenger,
        user_id=user_id,
        chat_id=user_id if chat_id is None else chat_id,
        blocked=blocked,
        linked_at=T0,
    )


def outbox_row(channel: str, kind: str, *, now: datetime, **columns: Any) -> OutboxMessage:
    """A new outbox row as a change writes it (services.outbox.new_row), due `now`; `columns`
    set others (chat_id, event_id, state...)."""
    return OutboxMessage(**{**new_row(channel, kind, now=now), **columns})


async def store(session_factory: async_sessionmaker[AsyncSession], *rows: object) -> None:
    """Write the rows (of the models, e.g. `application(...)`) in a transaction of their own."""
    async with session_factory() as session:
        session.add_all(rows)
        await session.commit()


async def link(
    session: AsyncSession,
    account_id: int,
    user_id: int,
    role: str,
    *,
    consent: bool = True,
    messenger: str = "telegram",
    chat_id: int | None = None,
) -> Binding:
    """Bind a messenger user to an existing account, in `role`, with the consent accepted (or
    not), as the bot leaves a person who linked."""
    owner = await session.get(Account, account_id)
    assert owner is not None, f"account {account_id} is not in the database"
    owner.active_role = role
    owner.consent_at = T0 if consent else None
    owner.consent_version = "1" if consent else None
    made = binding(account_id, user_id, messenger=messenger, chat_id=chat_id)
    session.add(made)
    await session.flush()
    return made


async def seed_school(session: AsyncSession, messenger: str = "telegram") -> None:
    """Two schools, their directors, applicants and a regional staff member, all linked in
    `messenger`.

    Accounts: 1 director of org 10 (also a listener), 2 second director of org 10,
    3 and 4 applicants of org 10, 5 director of org 20, 6 applicant of org 20, 7 staff.
    The person of account N is N + 1000 (their Telegram user id; user_id_of in MAX).
    """
    session.add_all([organization(10), organization(20)])
    await session.flush()
    linked = {"active_role": "director", "consent": True}
    listener = {"active_role": "listener", "consent": True}
    session.add_all(
        [
            account(1, "Петров Пётр Петрович", 10, "director", "listener", **linked),
            account(2, "Сидорова Анна Ивановна", 10, "director", **linked),
            account(3, "Войсковая Юлия Олеговна", 10, "listener", **listener),
            account(4, "Байдуганова Александра Юрьевна", 10, "listener", **listener),
            account(5, "Морозов Игорь Викторович", 20, "director", **linked),
            account(6, "Кузнецова Мария Сергеевна", 20, "listener", **listener),
            account(
                7, "Иванова Ольга Николаевна", None, "staff", active_role="staff", consent=True
            ),
        ]
    )
    await session.flush()
    session.add_all(
        [
            binding(
                account_id,
                user_id_of(account_id + 1000, messenger),
                messenger=messenger,
                chat_id=chat_id_of(account_id + 1000, messenger),
            )
            for account_id in range(1, 8)
        ]
    )
    await session.flush()


# -- many schools (the end-to-end tests under load) --------------------------------------------
# School `org` (from 1): its director is account 100 + org and its applicant 200 + org, each in
# their Telegram chat account + 1000; its application is number 5000 + org.


def school_director(org: int) -> int:
    return 100 + org


def school_applicant(org: int) -> int:
    return 200 + org


def school_application(org: int) -> int:
    return 5000 + org


def school_chat(account_id: int) -> int:
    return account_id + 1000


def director_chat(org: int) -> int:
    return school_chat(school_director(org))


def applicant_chat(org: int) -> int:
    return school_chat(school_applicant(org))


async def seed_schools(session: AsyncSession, schools: int) -> None:
    """Schools 1 to `schools`: a director and an applicant each, consented and bound in
    Telegram; a new application each, with its push to the director in the outbox."""
    orgs = range(1, schools + 1)
    session.add_all(organization(org) for org in orgs)
    await session.flush()
    for org in orgs:
        for person, name, role in (
            (school_director(org), f"Директор Школы {org}", "director"),
            (school_applicant(org), f"Педагог Школы {org}", "listener"),
        ):
            session.add(account(person, name, org, role, active_role=role, consent=True))
    await session.flush()
    for org in orgs:
        for person in (school_director(org), school_applicant(org)):
            session.add(binding(person, school_chat(person)))
    applications = [
        application(school_application(org), school_applicant(org), org) for org in orgs
    ]
    session.add_all(applications)
    await session.flush()
    for item in applications:
        await notify_new_application(Repositories(session), item, now=T0)
