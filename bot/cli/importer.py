"""`python -m bot import FILE`: organisations, accounts and applications from a JSON Lines or CSV
export of the web module (the format is in docs/IMPORT.md).

Every line is checked first; valid lines are written in file order by kind (organisations, then
accounts, then applications), in batches of one transaction each; invalid ones are listed with
their line numbers and the field at fault. Upserts are the API's, so a repeated import changes
nothing and an older version never overwrites a newer one.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.cli.progress import READ_STEP, Counts, Progress, counts_line, progress_for
from bot.settings import Settings
from bot.web.api.errors import describe, location
from services import integration
from services.clock import Clock, SystemClock
from services.domain import Source
from services.integration import (
    AccountData,
    ApplicationData,
    Id,
    IntegrationError,
    OrganizationData,
    UpsertResult,
)
from storage.db import create_engine, create_session_factory
from storage.migrate import upgrade
from storage.repositories import Repositories

BATCH_SIZE = 500
# On SQLite every other writer (the bot, the API, a dispatcher) waits for the file while a batch is
# written: smaller batches, and a pause after each that lets a waiting writer take the file before
# the next batch does (SQLite's busy handler retries every few milliseconds up to 100).
SQLITE_BATCH_SIZE = 100
SQLITE_PAUSE = 0.12  # seconds

KINDS = ("organization", "account", "application")
KIND_LABELS = {"organization": "ОО", "account": "Учётные записи", "application": "Заявки"}
RESULT_LABELS = {
    UpsertResult.CREATED: "создано",
    UpsertResult.UPDATED: "обновлено",
    UpsertResult.UNCHANGED: "без изменений",
    UpsertResult.STALE: "устаревших версий пропущено",
}


class OrganizationLine(OrganizationData):
    type: Literal["organization"]
    id: Id


class AccountLine(AccountData):
    type: Literal["account"]
    id: Id


class ApplicationLine(ApplicationData):
    type: Literal["application"]
    number: Id


Record = Annotated[OrganizationLine | AccountLine | ApplicationLine, Field(discriminator="type")]
RECORD = TypeAdapter[Record](Record)

KEYS = {"organization": "id", "account": "id", "application": "number"}
FIELDS = {
    "organization": {"type", "id", *OrganizationData.model_fields},
    "account": {"type", "id", *AccountData.model_fields},
    "application": {"type", "number", *ApplicationData.model_fields},
}
ALL_FIELDS = set().union(*FIELDS.values())


@dataclass(frozen=True)
class Line:
    number: int
    record: OrganizationLine | AccountLine | ApplicationLine

    @property
    def kind(self) -> str:
        return self.record.type


@dataclass
class ImportReport:
    results: dict[str, Counter[UpsertResult]] = field(
        default_factory=lambda: {kind: Counter() for kind in KINDS}
    )
    errors: list[tuple[int, str]] = field(default_factory=list)
    read: int = 0  # lines read (valid or not), known once the file is read

    def error(self, line: int, message: str) -> None:
        self.errors.append((line, message))

    def counts(self, *, total: int | None = None) -> Counts:
        applied = sum(sum(counter.values()) for counter in self.results.values())
        return Counts(self.read, applied, len(self.errors), total)

    def summary(self) -> list[str]:
        lines = []
        for kind in KINDS:
            counts = self.results[kind]
            parts = [f"{RESULT_LABELS[r]} {counts[r]}" for r in UpsertResult if counts[r]]
            lines.append(f"{KIND_LABELS[kind]}: {', '.join(parts) or 'нет'}")
        if self.errors:
            lines.append(f"Не загружено строк: {len(self.errors)}")
        return lines

    def error_lines(self) -> list[str]:
        return [f"строка {line}: {message}" for line, message in sorted(self.errors)]


def _validation_message(error: ValidationError) -> str:
    parts = []
    for item in error.errors(include_url=False):
        loc = item["loc"]
        # a tagged union puts the tag first: ('application', 'applicant_id')
        if loc and loc[0] in KINDS:
            loc = loc[1:]
        if item["type"] == "union_tag_invalid":
            parts.append("type: ожидается organization, account или application")
        elif item["type"] == "union_tag_not_found":
            parts.append("type: обязательное поле (organization, account или application)")
        else:
            parts.append(f"{location(loc)}: {describe(item)}")
    return "; ".join(parts)


# -- reading ------------------------------------------------------------------------------------


def read_jsonl(text: str, report: ImportReport) -> Iterator[Line]:
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = RECORD.validate_json(raw, strict=True)
        except ValidationError as error:
            if any(item["type"] == "json_invalid" for item in error.errors()):
                report.error(number, "строка — не JSON-объект")
            else:
                report.error(number, _validation_message(error))
            continue
        yield Line(number, record)


def _delimiter(header: str) -> str:
    counts = {d: header.count(d) for d in (",", ";", "\t")}
    return max(counts, key=lambda d: counts[d])


def _cells(kind: str, row: dict[str, str | None]) -> dict[str, Any]:
    """A CSV row as the record's fields: empty cells are left out, roles split."""
    values: dict[str, Any] = {"type": kind}
    for name, value in row.items():
        if name is None or name == "type" or value is None or value.strip() == "":
            continue
        if name not in FIELDS[kind]:
            raise ValueError(f"{name}: поле не относится к типу {kind}")
        values[name] = [r for r in re.split(r"[\s,;|]+", value) if r] if name == "roles" else value
    return values


def _kind_of(header: list[str]) -> str | None:
    if "number" in header:
        return "application"
    if "full_name" in header:
        return "account"
    if "name" in header:
        return "organization"
    return None


def read_csv(text: str, report: ImportReport) -> Iterator[Line]:
    first = text.split("\n", 1)[0]
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=_delimiter(first))
    header = [name.strip() for name in reader.fieldnames or []]
    reader.fieldnames = header
    unknown = [name for name in header if name not in ALL_FIELDS]
    if unknown:
        report.error(1, f"неизвестные столбцы: {', '.join(unknown)}")
        return
    fixed_kind = None if "type" in header else _kind_of(header)
    if "type" not in header and fixed_kind is None:
        report.error(1, "нет столбца type, и по столбцам не понять, что в файле")
        return
    end = reader.line_num
    for row in reader:
        number, end = end + 1, reader.line_num
        kind = fixed_kind or (row.get("type") or "").strip()
        if kind not in KINDS:
            report.error(number, "type: ожидается organization, account или application")
            continue
        try:
            record = RECORD.validate_python(_cells(kind, row))
        except ValueError as error:  # ValidationError is one too
            message = (
                _validation_message(error) if isinstance(error, ValidationError) else str(error)
            )
            report.error(number, message)
            continue
        yield Line(number, record)


def read_file(path: Path, report: ImportReport, progress: Progress | None = None) -> list[Line]:
    text = path.read_text(encoding="utf-8-sig")
    suffix = path.suffix.lower()
    is_json = suffix in (".jsonl", ".ndjson", ".json") or (
        suffix != ".csv" and text.lstrip().startswith("{")
    )
    lines: list[Line] = []
    for line in read_jsonl(text, report) if is_json else read_csv(text, report):
        lines.append(line)
        if progress is not None and len(lines) % READ_STEP == 0:
            report.read = len(lines) + len(report.errors)
            progress.show(report.counts())
    report.read = len(lines) + len(report.errors)
    if progress is not None:
        progress.show(report.counts(total=report.read))
    # Organisations first, then accounts, then applications: references resolve in one pass.
    return sorted(lines, key=lambda line: (KINDS.index(line.kind), line.number))


# -- writing ------------------------------------------------------------------------------------


async def _write(
    repo: Repositories, line: Line, *, snils_key: str | None, notify: bool, clock: Clock
) -> UpsertResult:
    record = line.record
    now = clock.now()
    if isinstance(record, OrganizationLine):
        return await integration.upsert_organization(repo, record.id, record, now=now)
    if isinstance(record, AccountLine):
        return await integration.upsert_account(
            repo, record.id, record, snils_key=snils_key, now=now
        )
    assert isinstance(record, ApplicationLine)
    outcome = await integration.upsert_application(
        repo, record.number, record, now=now, source=Source.CLI, notify=notify
    )
    return outcome.result


async def write_lines(
    session_factory: async_sessionmaker[AsyncSession],
    lines: list[Line],
    report: ImportReport,
    *,
    snils_key: str | None,
    notify: bool,
    clock: Clock,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
    pause: float = 0.0,
) -> None:
    """Valid lines in batches, one transaction each. A line the database refuses (a conflict
    no check foresaw) sends its batch back to be written line by line, so only it fails."""
    for start in range(0, len(lines), batch_size):
        batch = lines[start : start + batch_size]
        try:
            results = await _write_batch(session_factory, batch, report, snils_key, notify, clock)
        except DBAPIError:
            results = []
            for line in batch:
                try:
                    results += await _write_batch(
                        session_factory, [line], report, snils_key, notify, clock
                    )
                except DBAPIError as error:
                    report.error(line.number, f"база данных отклонила строку: {error.orig}")
        for line, result in results:
            report.results[line.kind][result] += 1
        if progress is not None:
            progress.show(report.counts(total=report.read))
        if pause and start + batch_size < len(lines):
            await asyncio.sleep(pause)


async def _write_batch(
    session_factory: async_sessionmaker[AsyncSession],
    batch: list[Line],
    report: ImportReport,
    snils_key: str | None,
    notify: bool,
    clock: Clock,
) -> list[tuple[Line, UpsertResult]]:
    results: list[tuple[Line, UpsertResult]] = []
    refused: list[tuple[int, str]] = []
    async with session_factory() as session:
        repo = Repositories(session)
        for line in batch:
            try:
                results.append(
                    (
                        line,
                        await _write(repo, line, snils_key=snils_key, notify=notify, clock=clock),
                    )
                )
            except IntegrationError as error:  # raised before anything of the line is written
                refused.append((line.number, str(error)))
        await session.commit()
    for number, message in refused:
        report.error(number, message)
    return results


async def import_file(
    path: Path,
    session_factory: async_sessionmaker[AsyncSession],
    *,
    snils_key: str | None,
    notify: bool,
    clock: Clock,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> ImportReport:
    report = ImportReport()
    lines = read_file(path, report, progress)
    await write_lines(
        session_factory,
        lines,
        report,
        snils_key=snils_key,
        notify=notify,
        clock=clock,
        batch_size=batch_size,
        progress=progress,
    )
    if progress is not None:
        progress.close(report.counts(total=report.read))
    return report


def _reading_failure(error: Exception) -> str:
    if isinstance(error, UnicodeDecodeError):
        return f"файл не в кодировке UTF-8 (байт {error.start + 1})"
    if isinstance(error, FileNotFoundError):
        return "файл не найден"
    if isinstance(error, IsADirectoryError):
        return "это каталог, а не файл"
    if isinstance(error, PermissionError):
        return "нет прав на чтение"
    return str(error)


async def run_import(settings: Settings, file: str, *, notify: bool) -> int:
    """The command: shows its progress (bot/cli/progress.py), prints a summary, the counts and
    the failed lines; 1 if any line failed."""
    path = Path(file)
    progress = progress_for(sys.stdout)
    try:
        report = ImportReport()
        lines = read_file(path, report, progress)
    except (OSError, UnicodeDecodeError) as error:
        progress.close(None)
        print(f"Не удалось прочитать {path}: {_reading_failure(error)}", file=sys.stderr)
        return 1
    engine = create_engine(settings.DATABASE_URL)
    sqlite = engine.dialect.name == "sqlite"
    try:
        await upgrade(engine)
        key = settings.SNILS_HASH_KEY
        await write_lines(
            create_session_factory(engine),
            lines,
            report,
            snils_key=key.get_secret_value() if key is not None else None,
            notify=notify,
            clock=SystemClock(),
            progress=progress,
            batch_size=SQLITE_BATCH_SIZE if sqlite else BATCH_SIZE,
            pause=SQLITE_PAUSE if sqlite else 0.0,
        )
    finally:
        progress.close(report.counts(total=report.read))
        await engine.dispose()
    print("\n".join([*report.summary(), counts_line(report.counts())]))
    if report.errors:
        print("\n".join(report.error_lines()), file=sys.stderr)
        return 1
    return 0
