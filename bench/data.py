"""The benchmark database: a seeded generator of organisations, people, applications, their
history and past notifications, built once and cached.

SQLite: a migrated file under bench/.cache/, named by the generator version, the schema (a hash of
the migrations) and the size; each run works on a copy. PostgreSQL (TEST_DATABASE_URL or
BENCH_DATABASE_URL set): a database of its own (`bench_<name of the test database>`, never the
test database itself) used as a template; each run works on a fresh copy of it.

`python -m bench.data` builds (or finds) the cached databases and says what is in them.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.texts.linking import CONSENT_VERSION
from storage.db import create_engine
from storage.migrate import upgrade
from storage.models import (
    Account,
    AccountRole,
    Application,
    ApplicationEvent,
    Binding,
    Organization,
    OutboxMessage,
)

GENERATOR_VERSION = 1
SEED = 8
ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(__file__).resolve().parent / ".cache"
MIGRATIONS = ROOT / "storage" / "migrations" / "versions"

TELEGRAM_OFFSET = 10_000_000  # a person's Telegram user id (and chat id) = account id + this
FIRST_NUMBER = 100_001  # applications are numbered from here
DIRECTORS_PER_ORGANIZATION = 2
ACCOUNTS_PER_STAFF = 3_000  # one regional staff member per this many accounts
LINKED_LISTENERS = 0.5  # share of applicants who linked Telegram
END = datetime(2026, 9, 1, 6, 0, tzinfo=UTC)  # the newest application is a little older
SPAN = timedelta(days=730)
STATUS_WEIGHTS = {"new": 35, "approved": 20, "cancelled": 15, "included": 30}


@dataclass(frozen=True)
class Size:
    organizations: int = 2_000
    accounts: int = 60_000
    applications: int = 100_000

    def __str__(self) -> str:
        return (
            f"{self.organizations:,} organisations, {self.accounts:,} accounts, "
            f"{self.applications:,} applications"
        )


FULL = Size()
TINY = Size(organizations=4, accounts=80, applications=200)  # the smoke test's


# --- names -----------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return text.split()


SURNAMES = _words(
    "Иванов Смирнов Кузнецов Попов Васильев Петров Соколов Михайлов Новиков Фёдоров Морозов "
    "Волков Алексеев Лебедев Семёнов Егоров Павлов Козлов Степанов Николаев Орлов Андреев "
    "Макаров Никитин Захаров Зайцев Соловьёв Борисов Яковлев Григорьев Романов Воробьёв "
    "Сергеев Кузьмин Фролов Александров Дмитриев Королёв Гусев Киселёв Ильин Максимов Поляков "
    "Сорокин Виноградов Ковалёв Белов Медведев Антонов Тарасов Жуков Баранов Филиппов Комаров "
    "Давыдов Беляев Герасимов Богданов Осипов Сидоров Матвеев Титов Марков Миронов Крылов "
    "Куликов Карпов Власов Мельников Денисов Гаврилов Тихонов Казаков Афанасьев Данилов "
    "Савельев Тимофеев Фомин Чернов Абрамов Мартынов Ефимов Федотов Щербаков Назаров Калинин "
    "Исаев Чернышёв Быков Маслов Родионов Коновалов Лазарев Воронин Климов Филатов Пономарёв "
    "Голубев Кудрявцев Прохоров Наумов Потапов Журавлёв Овчинников Трофимов Леонов Соболев "
    "Ермаков Колесников Гончаров Емельянов Никифоров Грачёв Котов Гришин Ефремов Архипов "
    "Громов Кириллов Малышев Панов Моисеев Румянцев Акимов Кондратьев Бирюков Горбунов "
    "Анисимов Ерёмин Тихомиров Галкин Лукьянов Михеев Скворцов Юдин Белоусов Нестеров Симонов "
    "Прокофьев Харитонов Князев Цветков Левин Митрофанов Воронов Аксёнов Софронов Мальцев "
    "Логинов Горшков Савин Краснов Майоров Демидов Елисеев Рыбаков Сафонов Плотников Демин "
    "Хохлов Жданов Носков Войсковой Байдуганов"
)
MALE_NAMES = _words(
    "Александр Алексей Андрей Антон Артём Борис Вадим Валерий Василий Виктор Владимир Дмитрий "
    "Евгений Иван Игорь Константин Максим Михаил Николай Олег Павел Роман Сергей Юрий"
)
FEMALE_NAMES = _words(
    "Александра Алёна Анастасия Анна Валентина Вера Галина Дарья Евгения Екатерина Елена "
    "Ирина Ксения Лариса Любовь Марина Мария Наталья Нина Ольга Светлана Татьяна Юлия"
)
PATRONYMIC_ROOTS = _words(
    "Александров Алексеев Андреев Борисов Викторов Владимиров Иванов Игорев Константинов "
    "Максимов Михайлов Николаев Олегов Павлов Петров Романов Сергеев Юрьев Фёдоров Геннадьев"
)

MUNICIPALITIES = (
    "г. Челябинск",
    "г. Магнитогорск",
    "г. Златоуст",
    "г. Миасс",
    "г. Копейск",
    "г. Троицк",
    "г. Озёрск",
    "г. Снежинск",
    "Сосновский муниципальный район",
    "Красноармейский муниципальный район",
    "Чебаркульский муниципальный район",
    "Агаповский муниципальный район",
)
KINDS = ("МАОУ «СОШ № {n}»", "МБОУ «СОШ № {n}»", "МАОУ «Лицей № {n}»", "МБОУ «Гимназия № {n}»")

PROGRAMS = [
    "Диагностика личностно профессионального развития участников кадрового резерва "
    "руководителей образовательных организаций в системе образования Челябинской области "
    "на период 2023 – 2024 гг.",
    "Оценка профессиональных компетенций педагогов в рамках аттестации",
    "Диагностика профессиональных дефицитов учителей математики",
    "Диагностика профессиональных дефицитов учителей русского языка и литературы",
    "Диагностика профессиональных дефицитов учителей начальных классов",
    "Оценка предметных и методических компетенций учителей физики",
    "Оценка предметных и методических компетенций учителей химии и биологии",
    "Диагностика цифровых компетенций педагогических работников",
    "Оценка управленческих компетенций заместителей руководителей",
    "Диагностика компетенций педагогов дополнительного образования",
    "Оценка компетенций классных руководителей в воспитательной работе",
    "Диагностика профессиональных дефицитов учителей иностранного языка",
]
STUDY_FORMS = ("Очная", "Очно-заочная", "Заочная с применением дистанционных технологий")
CATEGORIES = (
    "Учителя общеобразовательных организаций",
    "Руководители и заместители руководителей ОО",
    "Педагоги дополнительного образования",
    "Учителя начальных классов",
)
COMPETENCIES = (
    "Предметные, методические",
    "Психолого-педагогические, коммуникативные",
    "Управленческие, цифровые",
    "Предметные, методические, психолого-педагогические",
)
DPO_ORGANIZATIONS = (
    "ОГБУ «Челябинский центр оценки профессионального мастерства и квалификаций педагогов»",
    "ГБУ ДПО «Челябинский институт развития образования»",
)
COMMENTS = (
    "Согласовано, участие обязательно.",
    "Прошу учесть нагрузку в период обучения.",
    "Подтверждаю, замену на уроках обеспечим.",
    "Отменяю: совпадает с ГИА, подайте заявку на следующий поток.",
    "Уточните, пожалуйста, даты обучения.",
    "Документы переданы в методический кабинет.",
)


def full_name(rng: random.Random) -> str:
    surname, female = rng.choice(SURNAMES), rng.random() < 0.7  # most teachers are women
    root = rng.choice(PATRONYMIC_ROOTS)
    if female:
        surname = surname + "а"
        first = rng.choice(FEMALE_NAMES)
        patronymic = (root[:-2] + "евна") if root.endswith("ев") else root[:-2] + "овна"
    else:
        first = rng.choice(MALE_NAMES)
        patronymic = (root[:-2] + "евич") if root.endswith("ев") else root[:-2] + "ович"
    return f"{surname} {first} {patronymic}"


# --- rows ------------------------------------------------------------------------------------


@dataclass
class Dataset:
    """Rows for every table, in insertion order."""

    tables: dict[type, list[dict[str, Any]]] = field(default_factory=dict)

    def rows(self, model: type) -> list[dict[str, Any]]:
        return self.tables.setdefault(model, [])

    def counts(self) -> str:
        return ", ".join(
            f"{model.__tablename__} {len(rows):,}"  # type: ignore[attr-defined]
            for model, rows in self.tables.items()
        )


def generate(size: Size, seed: int = SEED) -> Dataset:
    """Every row of the benchmark database, the same for the same size and seed."""
    rng = random.Random(seed)
    data = Dataset()
    organizations = list(range(1, size.organizations + 1))
    for org in organizations:
        kind = rng.choice(KINDS).format(n=org)
        data.rows(Organization).append(
            {
                "id": org,
                "name": f"{kind} {rng.choice(MUNICIPALITIES)}",
                "municipality": rng.choice(MUNICIPALITIES),
                "updated_at": END - SPAN,
            }
        )

    # Accounts: two directors per organisation, a few regional staff, the rest applicants spread
    # over the organisations unevenly (a few big schools, many small ones).
    names: dict[int, str] = {}
    directors: dict[int, list[int]] = {org: [] for org in organizations}
    listeners: list[tuple[int, int]] = []  # (account, organisation)
    staff: list[int] = []
    roles: dict[int, list[str]] = {}
    account_org: dict[int, int | None] = {}
    next_id = 1
    for org in organizations:
        for _ in range(DIRECTORS_PER_ORGANIZATION):
            directors[org].append(next_id)
            account_org[next_id] = org
            roles[next_id] = ["director"]
            next_id += 1
    for _ in range(max(1, size.accounts // ACCOUNTS_PER_STAFF)):
        staff.append(next_id)
        account_org[next_id] = None
        roles[next_id] = ["staff"]
        next_id += 1
    weights = [min(rng.paretovariate(1.6), 20.0) for _ in organizations]
    remaining = max(0, size.accounts - next_id + 1)
    for org in rng.choices(organizations, weights=weights, k=remaining):
        listeners.append((next_id, org))
        account_org[next_id] = org
        roles[next_id] = ["listener"]
        next_id += 1
    for account_id, org in account_org.items():
        names[account_id] = full_name(rng)
        data.rows(Account).append(
            {
                "id": account_id,
                "full_name": names[account_id],
                "organization_id": org,
                "esia_oid": f"bench-{account_id}",
                "snils_hash": None,
                "updated_at": END - SPAN,
            }
        )
        for role in roles[account_id]:
            data.rows(AccountRole).append({"account_id": account_id, "role": role})

    linked = set(staff) | {a for ids in directors.values() for a in ids}
    linked |= {a for a, _ in listeners if rng.random() < LINKED_LISTENERS}
    for row in data.rows(Account):  # what the bot keeps of a bound person, on the account
        bound = row["id"] in linked
        row["active_role"] = roles[row["id"]][0] if bound else None
        row["consent_at"] = END - SPAN if bound else None
        row["consent_version"] = CONSENT_VERSION if bound else None
        row["muted"] = False
        row["digest_enabled"] = True
        row["push_to"] = None
    for account_id in sorted(linked):
        data.rows(Binding).append(
            {
                "account_id": account_id,
                "messenger": "telegram",
                "user_id": account_id + TELEGRAM_OFFSET,
                "chat_id": account_id + TELEGRAM_OFFSET,
                "blocked": False,
                "linked_at": END - SPAN,
            }
        )

    statuses, status_weights = list(STATUS_WEIGHTS), list(STATUS_WEIGHTS.values())
    event_id = 0
    for index in range(size.applications):
        number = FIRST_NUMBER + index
        applicant, org = rng.choice(listeners)
        status = rng.choices(statuses, weights=status_weights)[0]
        created = END - SPAN * rng.random()
        study_from = (created + timedelta(days=rng.randint(14, 90))).date()
        program = rng.choice(PROGRAMS)
        events: list[tuple[int, str, str, str, str | None]] = []  # actor, role, action, to, comment
        director = rng.choice(directors[org])

        def comment(probability: float) -> str | None:
            return rng.choice(COMMENTS) if rng.random() < probability else None

        if status in ("approved", "included"):
            events.append((director, "director", "approve", "approved", comment(0.3)))
        if status == "included":
            events.append((rng.choice(staff), "staff", "include", "included", comment(0.2)))
        if status == "cancelled":
            if rng.random() < 0.6:
                events.append((director, "director", "cancel", "cancelled", comment(0.5)))
            else:
                events.append((applicant, "listener", "cancel", "cancelled", comment(0.5)))
        if rng.random() < 0.1:
            events.append((applicant, "listener", "comment", "", rng.choice(COMMENTS)))
        moment, current = created, "new"
        for actor, role, action, to_status, remark in events:
            moment += timedelta(minutes=rng.randint(5, 4_000))
            event_id += 1
            after = to_status or current
            data.rows(ApplicationEvent).append(
                {
                    "id": event_id,
                    "application_number": number,
                    "actor_account_id": actor,
                    "actor_name": names[actor],
                    "actor_role": role,
                    "action": action,
                    "from_status": current,
                    "to_status": after,
                    "comment": remark,
                    "source": "telegram",
                    "created_at": moment,
                }
            )
            current = after
            if applicant in linked and actor != applicant:
                data.rows(OutboxMessage).append(
                    {
                        "channel": "telegram",
                        "kind": "comment" if action == "comment" else "status_changed",
                        "account_id": applicant,
                        "chat_id": applicant + TELEGRAM_OFFSET,
                        "application_number": number,
                        "event_id": event_id,
                        "payload": {},
                        "state": "sent",
                        "attempts": 1,
                        "available_at": moment,
                        "lease_until": None,
                        "created_at": moment,
                        "sent_at": moment + timedelta(seconds=1),
                        "message_id": str(rng.randint(1, 10_000)),
                        "last_error": None,
                    }
                )
        data.rows(Application).append(
            {
                "number": number,
                "applicant_id": applicant,
                "organization_id": org,
                "program": program,
                "group_name": f"{program[:60]} — поток {rng.randint(1, 12)}",
                "description": "Диагностика профессиональных компетенций в форме тестирования "
                "и решения кейсов.",
                "study_from": study_from,
                "study_to": study_from + timedelta(days=rng.randint(2, 10)),
                "study_form": rng.choice(STUDY_FORMS),
                "listener_categories": rng.choice(CATEGORIES),
                "competencies": rng.choice(COMPETENCIES),
                "dpo_organization": rng.choice(DPO_ORGANIZATIONS),
                "status": status,
                "version": len(events) + 1,
                "created_at": created,
                "updated_at": moment,
            }
        )
    # Applications reference accounts, events reference applications: insert in this order.
    order = [
        Organization,
        Account,
        AccountRole,
        Binding,
        Application,
        ApplicationEvent,
        OutboxMessage,
    ]
    data.tables = {model: data.rows(model) for model in order}
    return data


async def fill(engine: AsyncEngine, data: Dataset, batch: int = 5_000) -> None:
    """Insert the rows with executemany in batches, in one transaction per table."""
    for model, rows in data.tables.items():
        table = model.__table__  # type: ignore[attr-defined]
        async with engine.begin() as connection:
            for start in range(0, len(rows), batch):
                await connection.execute(insert(table), rows[start : start + batch])
    if engine.dialect.name == "postgresql":
        async with engine.begin() as connection:
            for table in ("application_events", "outbox", "bindings"):
                await connection.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
                )
            await connection.execute(text("ANALYZE"))
    else:
        async with engine.begin() as connection:
            await connection.execute(text("ANALYZE"))


# --- cached databases ------------------------------------------------------------------------


def dataset_key(size: Size) -> str:
    """Names the generated database: generator version, schema and size."""
    schema = hashlib.sha256()
    for path in sorted(MIGRATIONS.glob("*.py")):
        schema.update(path.read_bytes())
    parts = (size.organizations, size.accounts, size.applications)
    return f"v{GENERATOR_VERSION}-{schema.hexdigest()[:10]}-" + "-".join(map(str, parts))


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def sqlite_database(size: Size, *, quiet: bool = False) -> Path:
    """The cached SQLite file of this size, generated if missing."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"dpo-{dataset_key(size)}.sqlite3"
    if path.exists():
        return path
    started = time.perf_counter()
    building = path.with_suffix(f".building-{os.getpid()}")
    engine = create_engine(sqlite_url(building))
    try:
        await upgrade(engine)
        data = generate(size)
        await fill(engine, data)
        async with engine.connect() as connection:
            await connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    finally:
        await engine.dispose()
    _publish(building, path)
    if not quiet:
        print(
            f"generated {path.name} in {time.perf_counter() - started:.1f} s: {data.counts()}",
            flush=True,
        )
    return path


def _publish(building: Path, path: Path) -> None:
    """Move the finished file into place (checkpointed: its -wal and -shm are left empty)."""
    for suffix in ("-wal", "-shm"):
        Path(f"{building}{suffix}").unlink(missing_ok=True)
    building.replace(path)


def postgres_base_url() -> URL | None:
    """The benchmark's own PostgreSQL database: BENCH_DATABASE_URL, or TEST_DATABASE_URL's
    server with the database `bench_<its name>`; None when neither is set."""
    explicit = os.environ.get("BENCH_DATABASE_URL")
    if explicit:
        return make_url(explicit)
    test = os.environ.get("TEST_DATABASE_URL")
    if not test:
        return None
    url = make_url(test)
    return url.set(database=f"bench_{url.database}")


def _maintenance(url: URL) -> AsyncEngine:
    return create_async_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")


async def _database_key(admin: AsyncEngine, name: str) -> str | bool | None:
    """The dataset key written on the database (False: no such database)."""
    async with admin.connect() as connection:
        row = (
            await connection.execute(
                text(
                    "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                    "WHERE datname = :name"
                ),
                {"name": name},
            )
        ).first()
    if row is None:
        return False
    return row[0]


async def postgres_template(size: Size, base: URL, *, quiet: bool = False) -> URL:
    """The generated PostgreSQL database of this size (a template for runs), built if missing
    or generated by another version."""
    key = dataset_key(size)
    name = f"{base.database}_{size.applications}"
    admin = _maintenance(base)
    try:
        existing = await _database_key(admin, name)
        if existing == key:
            return base.set(database=name)
        started = time.perf_counter()
        async with admin.connect() as connection:
            if existing is not False:
                await connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            await connection.execute(text(f'CREATE DATABASE "{name}"'))
        engine = create_engine(base.set(database=name).render_as_string(hide_password=False))
        try:
            await upgrade(engine)
            data = generate(size)
            await fill(engine, data)
        finally:
            await engine.dispose()
        async with admin.connect() as connection:
            await connection.execute(text(f"COMMENT ON DATABASE \"{name}\" IS '{key}'"))
    finally:
        await admin.dispose()
    if not quiet:
        print(
            f"generated PostgreSQL {name} in {time.perf_counter() - started:.1f} s: "
            f"{data.counts()}",
            flush=True,
        )
    return base.set(database=name)


@asynccontextmanager
async def working_database(backend: str, size: Size) -> AsyncIterator[str]:
    """A fresh copy of the generated database for one benchmark run; removed afterwards."""
    if backend == "sqlite":
        source = await sqlite_database(size)
        with tempfile.TemporaryDirectory(prefix="dpo-bench-") as folder:
            path = Path(folder) / "bench.sqlite3"
            shutil.copyfile(source, path)
            yield sqlite_url(path)
        return
    base = postgres_base_url()
    if base is None:
        raise RuntimeError("PostgreSQL needs TEST_DATABASE_URL or BENCH_DATABASE_URL")
    template = await postgres_template(size, base)
    name = f"{base.database}_run_{uuid.uuid4().hex[:8]}"
    admin = _maintenance(base)
    try:
        async with admin.connect() as connection:
            await connection.execute(
                text(f'CREATE DATABASE "{name}" TEMPLATE "{template.database}"')
            )
        try:
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            async with admin.connect() as connection:
                await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


def backends() -> list[str]:
    """SQLite always; PostgreSQL too when a server is configured."""
    return ["sqlite", *(["postgresql"] if postgres_base_url() is not None else [])]


def command_line(module: str, description: str | None) -> argparse.ArgumentParser:
    """`python -m <module>`'s options, with the two every part takes: `--backend` (once for
    each) and `--tiny`; `chosen` reads them."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), action="append")
    parser.add_argument("--tiny", action="store_true", help="the smoke test's data size")
    return parser


def chosen(
    args: argparse.Namespace, default: Sequence[str] | None = None
) -> tuple[list[str], Size]:
    """The backends the command line names (else `default`, else `backends()`) and the size."""
    return args.backend or list(default or backends()), TINY if args.tiny else FULL


# --- what the workloads need from the data ---------------------------------------------------


@dataclass(frozen=True)
class Director:
    account_id: int
    organization_id: int
    telegram_user_id: int
    new_applications: tuple[int, ...]  # newest first
    surnames: tuple[str, ...]  # of the organisation's applicants


async def directors(url: str, *, limit: int, minimum_new: int = 12) -> list[Director]:
    """Linked directors of the organisations with the most new applications (one director per
    organisation), with what a workload needs to act as them."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            busiest = (
                await connection.execute(
                    select(Application.organization_id, func.count())
                    .where(Application.status == "new")
                    .group_by(Application.organization_id)
                    .having(func.count() >= minimum_new)
                    .order_by(func.count().desc(), Application.organization_id)
                    .limit(limit)
                )
            ).all()
            chosen: list[Director] = []
            for org, _ in busiest:
                account_id = await connection.scalar(
                    select(Binding.account_id)
                    .join(Account, Account.id == Binding.account_id)
                    .where(Account.organization_id == org, Account.active_role == "director")
                    .order_by(Binding.account_id)
                    .limit(1)
                )
                if account_id is None:
                    continue
                numbers = (
                    await connection.scalars(
                        select(Application.number)
                        .where(Application.organization_id == org, Application.status == "new")
                        .order_by(Application.created_at.desc(), Application.number.desc())
                    )
                ).all()
                names = (
                    await connection.scalars(
                        select(Account.full_name)
                        .join(Application, Application.applicant_id == Account.id)
                        .where(Application.organization_id == org)
                        .distinct()
                    )
                ).all()
                surnames = tuple(sorted({name.split()[0] for name in names}))
                chosen.append(
                    Director(
                        account_id=account_id,
                        organization_id=org,
                        telegram_user_id=account_id + TELEGRAM_OFFSET,
                        new_applications=tuple(numbers),
                        surnames=surnames,
                    )
                )
    finally:
        await engine.dispose()
    return chosen


async def linked_users(url: str) -> list[int]:
    """Telegram user ids of every linked account (the chats the Bot API double must know)."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return list(
                await connection.scalars(
                    select(Binding.user_id).where(Binding.messenger == "telegram")
                )
            )
    finally:
        await engine.dispose()


async def _main(size: Size) -> None:
    started = time.perf_counter()
    path = await sqlite_database(size)
    print(f"SQLite: {path} ({path.stat().st_size / 2**20:.0f} MiB)")
    base = postgres_base_url()
    if base is not None:
        template = await postgres_template(size, base)
        print(f"PostgreSQL: {template.render_as_string(hide_password=True)}")
    print(f"{size}; ready in {time.perf_counter() - started:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.data", description=__doc__)
    parser.add_argument("--tiny", action="store_true", help="the smoke test's size")
    args = parser.parse_args()
    asyncio.run(_main(TINY if args.tiny else FULL))


if __name__ == "__main__":
    main()
