"""Data from the web module, the system of record: organisations, accounts and applications.

Upserts are idempotent. An application's `version` orders its updates: an older or repeated
version is acknowledged and ignored. A new application and a status change arriving from the web
module are recorded in history and notified like a change made in Telegram. Everything happens in
the caller's transaction; a reference to something unknown raises IntegrationError before
anything is written.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from services.domain import Action, Role, Source, Status
from services.linking import normalize_snils, snils_hash
from services.notifications import NotificationKind, enqueue_pushes, notify_event, push_row
from storage.models import Account, AccountRole, Application, Organization
from storage.repositories import Recipient, Repositories

# Who the history names for changes that come from the web module.
ORIGIN_NAME = "Модуль «Организация ДПО»"

MAX_ID = 2**63 - 1  # BIGINT
# Moments from the web module (created_at) lie within these, in UTC.
EARLIEST_MOMENT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_MOMENT = datetime(2201, 1, 1, tzinfo=UTC)
# NUL cannot be stored in PostgreSQL text; nothing legitimate contains it.
NO_NUL = r"^[^\x00]*$"


class HistoryAction(StrEnum):
    """History actions of changes from the web module that are not a person's action here."""

    CREATE = "create"  # the application arrived
    REOPEN = "reopen"  # the web module moved it back to «Не обработана»


# The person's action a status change from the web module corresponds to, for history.
ACTION_FOR_STATUS: dict[Status, str] = {
    Status.NEW: HistoryAction.REOPEN.value,
    Status.APPROVED: Action.APPROVE.value,
    Status.CANCELLED: Action.CANCEL.value,
    Status.INCLUDED: Action.INCLUDE.value,
}


Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Version = Annotated[int, Field(ge=0, le=MAX_ID)]
# Texts are trimmed; the limits are the columns' (and a little room for long programme names).
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500, pattern=NO_NUL)
]
FullName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255, pattern=NO_NUL)
]
Line = Annotated[str, StringConstraints(strip_whitespace=True, max_length=255, pattern=NO_NUL)]
Long = Annotated[str, StringConstraints(strip_whitespace=True, max_length=4000, pattern=NO_NUL)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _blank_is_missing(cls, value: object) -> object:
        """An empty optional text is «Не указано», stored as NULL."""
        return None if value == "" else value


class OrganizationData(_Input):
    """An educational organisation (ОО)."""

    name: Name = Field(description="Полное наименование ОО")
    municipality: Line | None = Field(None, description="Муниципальное образование")


class AccountData(_Input):
    """A person's account. `esia_oid` and `snils` left out keep what is stored; null clears it."""

    full_name: FullName = Field(description="ФИО")
    organization_id: Id | None = Field(None, description="ОО, в которой работает человек")
    roles: list[Role] = Field(default_factory=list, max_length=len(Role), description="Роли")
    esia_oid: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z_-]{1,64}$")] | None = Field(
        None, description="Идентификатор учётной записи ЕСИА"
    )
    snils: Annotated[str, StringConstraints(max_length=20, pattern=NO_NUL)] | None = Field(
        None,
        description="СНИЛС: 11 цифр 0–9 (ASCII), можно с пробелами и дефисами; хранится только "
        "ключевой хеш",
    )

    @field_validator("snils", mode="after")
    @classmethod
    def _snils(cls, value: str | None) -> str | None:
        if value is None:
            return None
        digits = normalize_snils(value)
        if digits is None:
            raise ValueError(
                "СНИЛС — 11 цифр 0–9, можно с пробелами и дефисами, например 112-233-445 95"
            )
        return digits


class ApplicationData(_Input):
    """An application (заявка) as on the web card."""

    applicant_id: Id = Field(description="Учётная запись заявителя")
    organization_id: Id = Field(description="ОО заявителя")
    program: Long | None = Field(None, description="Программа")
    group: Name | None = Field(None, description="Группа")
    description: Long | None = Field(None, description="Описание")
    study_from: date | None = Field(None, description="Начало обучения")
    study_to: date | None = Field(None, description="Окончание обучения")
    study_form: Line | None = Field(None, description="Форма обучения")
    listener_categories: Long | None = Field(None, description="Категория(и) слушателей")
    competencies: Long | None = Field(None, description="Совершенствуемые компетенции")
    dpo_organization: Long | None = Field(None, description="Организация ДПО")
    status: Status = Field(description="Статус")
    version: Version = Field(description="Версия записи в модуле; старшая версия побеждает")
    created_at: AwareDatetime | None = Field(
        None, description="Когда заявка подана (по умолчанию — когда получена)"
    )

    @field_validator("study_to", mode="after")
    @classmethod
    def _dates_in_order(cls, value: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("study_from")
        if value is not None and start is not None and value < start:
            raise ValueError("дата окончания обучения раньше даты начала")
        return value

    @field_validator("created_at", mode="after")
    @classmethod
    def _plausible_moment(cls, value: datetime | None) -> datetime | None:
        # Compared, not converted: 0001-01-01T00:00:00+01:00 has no UTC datetime (astimezone
        # would raise OverflowError, which pydantic does not turn into a validation error).
        if value is not None and not EARLIEST_MOMENT <= value < LATEST_MOMENT:
            raise ValueError("дата вне допустимого диапазона: от 1970 до 2200 года")
        return value


class NumberedApplication(ApplicationData):
    """An application with its number, as in a batch or an import file."""

    number: Id = Field(description="Номер заявки")


class UpsertResult(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"  # the same data or the same version again: nothing to do
    STALE = "stale"  # an older version than the one stored: ignored


class IntegrationError(Exception):
    """Input that refers to something unknown or conflicts with stored data; nothing written."""

    UNKNOWN_REFERENCE = "unknown_reference"
    CONFLICT = "conflict"
    NOT_CONFIGURED = "not_configured"

    def __init__(self, code: str, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.code = code
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ApplicationOutcome:
    number: int
    result: UpsertResult
    version: int  # the version stored now
    status: Status  # the status stored now


async def upsert_organization(
    repo: Repositories, organization_id: int, data: OrganizationData, *, now: datetime
) -> UpsertResult:
    organization = await repo.organizations.get(organization_id)
    if organization is None:
        repo.session.add(
            Organization(
                id=organization_id, name=data.name, municipality=data.municipality, updated_at=now
            )
        )
        await repo.session.flush()
        return UpsertResult.CREATED
    if (organization.name, organization.municipality) == (data.name, data.municipality):
        return UpsertResult.UNCHANGED
    organization.name = data.name
    organization.municipality = data.municipality
    organization.updated_at = now
    await repo.session.flush()
    return UpsertResult.UPDATED


async def upsert_account(
    repo: Repositories,
    account_id: int,
    data: AccountData,
    *,
    snils_key: str | None,
    now: datetime,
) -> UpsertResult:
    """Create or update an account; SNILS is kept only as a hash under `snils_key`."""
    given = data.model_fields_set
    if data.organization_id is not None and not await repo.organizations.existing_ids(
        [data.organization_id]
    ):
        raise _unknown("organization_id", f"организация {data.organization_id} не найдена")
    if data.esia_oid is not None:
        holder = await repo.accounts.holder_of(esia_oid=data.esia_oid)
        if holder not in (None, account_id):
            raise IntegrationError(
                IntegrationError.CONFLICT,
                "esia_oid",
                f"этот идентификатор ЕСИА уже у учётной записи {holder}",
            )
    hashed: str | None = None
    if data.snils is not None:
        if snils_key is None:
            raise IntegrationError(
                IntegrationError.NOT_CONFIGURED,
                "snils",
                "СНИЛС не принят: не задан ключ SNILS_HASH_KEY, без него СНИЛС не хранится",
            )
        hashed = snils_hash(data.snils, snils_key)
        holder = await repo.accounts.holder_of(snils_hash=hashed)
        if holder not in (None, account_id):
            raise IntegrationError(
                IntegrationError.CONFLICT, "snils", f"этот СНИЛС уже у учётной записи {holder}"
            )
    roles = sorted(set(data.roles))

    account = await repo.accounts.get(account_id)
    if account is None:
        repo.session.add(
            Account(
                id=account_id,
                full_name=data.full_name,
                organization_id=data.organization_id,
                esia_oid=data.esia_oid,
                snils_hash=hashed,
                updated_at=now,
                roles=[AccountRole(role=role.value) for role in roles],
            )
        )
        await repo.session.flush()
        return UpsertResult.CREATED

    changes: dict[str, object] = {
        "full_name": data.full_name,
        "organization_id": data.organization_id,
    }
    if "esia_oid" in given:
        changes["esia_oid"] = data.esia_oid
    if "snils" in given:
        changes["snils_hash"] = hashed
    changed = {k: v for k, v in changes.items() if getattr(account, k) != v}
    wanted = {role.value for role in roles}
    stored = set(account.role_codes)
    if not changed and wanted == stored:
        return UpsertResult.UNCHANGED
    for key, value in changed.items():
        setattr(account, key, value)
    # Only the difference: deleting and re-inserting one role would clash on its primary key.
    account.roles = [r for r in account.roles if r.role in wanted] + [
        AccountRole(role=code) for code in sorted(wanted - stored)
    ]
    account.updated_at = now
    await repo.session.flush()
    return UpsertResult.UPDATED


def _unknown(field: str, message: str) -> IntegrationError:
    return IntegrationError(IntegrationError.UNKNOWN_REFERENCE, field, message)


FIELDS = (
    "applicant_id",
    "organization_id",
    "program",
    "group",
    "description",
    "study_from",
    "study_to",
    "study_form",
    "listener_categories",
    "competencies",
    "dpo_organization",
)


@dataclass
class References:
    """Accounts and organisations known to exist, looked up once for a whole batch."""

    accounts: set[int]
    organizations: set[int]

    @classmethod
    async def load(cls, repo: Repositories, items: list[ApplicationData]) -> References:
        return cls(
            accounts=await repo.accounts.existing_ids(i.applicant_id for i in items),
            organizations=await repo.organizations.existing_ids(i.organization_id for i in items),
        )

    def check(self, data: ApplicationData, prefix: str = "") -> None:
        if data.applicant_id not in self.accounts:
            raise _unknown(
                f"{prefix}applicant_id", f"учётная запись {data.applicant_id} не найдена"
            )
        if data.organization_id not in self.organizations:
            raise _unknown(
                f"{prefix}organization_id", f"организация {data.organization_id} не найдена"
            )


async def upsert_application(
    repo: Repositories,
    number: int,
    data: ApplicationData,
    *,
    now: datetime,
    source: Source = Source.API,
    notify: bool = True,
    references: References | None = None,
    field_prefix: str = "",
) -> ApplicationOutcome:
    """Create or update an application from the web module.

    A new application gets a «create» history row and, while «Не обработана», a push to the
    directors of its organisation. A newer version that changes the status gets a history row
    and notifies like a change made in Telegram. Both writes are conditional (on the version, on
    the status), so a concurrent decision or a concurrent update cannot be overwritten unseen.
    """
    references = references or await References.load(repo, [data])
    references.check(data, field_prefix)
    values = {name: getattr(data, name) for name in FIELDS}

    application = await repo.applications.get(number)
    if application is None:
        application = Application(
            number=number,
            status=data.status.value,
            version=data.version,
            created_at=data.created_at or now,
            updated_at=now,
            **values,
        )
        repo.session.add(application)
        await repo.session.flush()
        event = await repo.events.add(
            application_number=number,
            actor_account_id=None,
            actor_name=ORIGIN_NAME,
            actor_role=None,
            action=HistoryAction.CREATE.value,
            from_status=None,
            to_status=data.status.value,
            comment=None,
            source=source.value,
            created_at=now,
        )
        if notify and data.status is Status.NEW:
            await enqueue_pushes(
                repo,
                kind=NotificationKind.NEW_APPLICATION,
                account_ids=await repo.accounts.director_ids(data.organization_id),
                application_number=number,
                event_id=event.id,
                now=now,
            )
        return ApplicationOutcome(number, UpsertResult.CREATED, data.version, data.status)

    if not await repo.applications.apply_version(
        number, data.version, {**values, "updated_at": now}
    ):
        stored = await repo.applications.get(number)
        assert stored is not None
        result = UpsertResult.UNCHANGED if stored.version == data.version else UpsertResult.STALE
        return ApplicationOutcome(number, result, stored.version, Status(stored.status))

    current = Status(application.status)
    # The status moves conditionally: a decision committed meanwhile is the real "from".
    while current is not data.status:
        if await repo.applications.transition(number, current.value, data.status.value, now):
            event = await repo.events.add(
                application_number=number,
                actor_account_id=None,
                actor_name=ORIGIN_NAME,
                actor_role=None,
                action=ACTION_FOR_STATUS[data.status],
                from_status=current.value,
                to_status=data.status.value,
                comment=None,
                source=source.value,
                created_at=now,
            )
            application = await repo.applications.get(number)
            assert application is not None
            if notify:
                await notify_event(repo, application, event, actor_role=None, now=now)
            break
        status = await repo.applications.current_status(number)
        assert status is not None
        current = Status(status)
    return ApplicationOutcome(number, UpsertResult.UPDATED, data.version, data.status)


async def upsert_applications(
    repo: Repositories,
    items: list[NumberedApplication],
    *,
    now: datetime,
    source: Source = Source.API,
    notify: bool = True,
    field_prefix: str = "applications",
) -> list[ApplicationOutcome]:
    """A batch in one transaction, in order; an unknown reference anywhere rejects it all.

    The batch's new applications are created together (create_new_applications); the others
    go through upsert_application one by one, in the batch's order.
    """
    references = await References.load(repo, list(items))
    for index, item in enumerate(items):
        references.check(item, f"{field_prefix}[{index}].")
    created = await create_new_applications(repo, items, now=now, source=source, notify=notify)
    return [
        created.get(item.number)
        or await upsert_application(
            repo, item.number, item, now=now, source=source, notify=notify, references=references
        )
        for item in items
    ]


async def create_new_applications(
    repo: Repositories,
    items: list[NumberedApplication],
    *,
    now: datetime,
    source: Source,
    notify: bool,
) -> dict[int, ApplicationOutcome]:
    """Create the applications of a batch that are not stored yet and named once in it, as
    upsert_application would one by one (the row, its «create» history row, the push of a new
    one to its organisation's directors), in a few statements for the whole batch instead of
    several per application (bench/ingest.py). References must have been checked."""
    named = Counter(item.number for item in items)
    candidates = [item for item in items if named[item.number] == 1]
    stored = await repo.applications.existing_numbers(item.number for item in candidates)
    new = [item for item in candidates if item.number not in stored]
    if not new:
        return {}
    await repo.applications.add_many(
        [
            {
                "number": item.number,
                "status": item.status.value,
                "version": item.version,
                "created_at": item.created_at or now,
                "updated_at": now,
                **{name: getattr(item, name) for name in FIELDS},
            }
            for item in new
        ]
    )
    await repo.events.add_many(
        [
            {
                "application_number": item.number,
                "actor_account_id": None,
                "actor_name": ORIGIN_NAME,
                "actor_role": None,
                "action": HistoryAction.CREATE.value,
                "from_status": None,
                "to_status": item.status.value,
                "comment": None,
                "source": source.value,
                "created_at": now,
            }
            for item in new
        ]
    )
    if notify:
        event_ids = await repo.events.first_ids(item.number for item in new)
        await _notify_new(repo, [(item, event_ids[item.number]) for item in new], now)
    return {
        item.number: ApplicationOutcome(
            item.number, UpsertResult.CREATED, item.version, item.status
        )
        for item in new
    }


async def _notify_new(
    repo: Repositories, created: list[tuple[NumberedApplication, int]], now: datetime
) -> None:
    """The pushes of new «Не обработана» applications to their directors (enqueue_pushes for
    many applications: the directors and their chats read once)."""
    unprocessed = [(item, event_id) for item, event_id in created if item.status is Status.NEW]
    directors = await repo.accounts.director_ids_by_organization(
        item.organization_id for item, _ in unprocessed
    )
    everyone = sorted({account for accounts in directors.values() for account in accounts})
    chats: dict[int, list[Recipient]] = {}
    for recipient in await repo.links.recipients(everyone):
        chats.setdefault(recipient.account_id, []).append(recipient)
    rows = [
        row
        for item, event_id in unprocessed
        for account in directors[item.organization_id]
        for recipient in chats.get(account, [])
        if (
            row := push_row(
                recipient,
                kind=NotificationKind.NEW_APPLICATION,
                application_number=item.number,
                event_id=event_id,
                now=now,
            )
        )
        is not None
    ]
    await repo.outbox.add_many(rows)
