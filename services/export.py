"""A list of applications as an .xlsx workbook («📤 Выгрузить»): the list as it is filtered, all
its pages, with the columns of the web module's card; dates as dd.mm.yyyy, times local.

Messenger-neutral: the conversation hands the bytes to a front end as a document.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

import xlsxwriter
from sqlalchemy import select

from services.domain import Actor, Status
from services.queries import Narrowing, Search, list_applications
from storage.models import Application, Organization
from storage.repositories import Repositories

LIMIT = 20_000  # rows one export takes at most
DATE_FORMAT = "dd.mm.yyyy"
TIME_FORMAT = "dd.mm.yyyy hh:mm"

# The card's fields (Рисунок 8 of the instruction), in its order.
COLUMNS: tuple[tuple[str, int], ...] = (
    ("Номер", 10),
    ("Статус", 28),
    ("Заявитель", 32),
    ("ОО", 40),
    ("Группа", 36),
    ("Описание", 36),
    ("Программа", 60),
    ("Дата начала обучения", 14),
    ("Дата окончания обучения", 14),
    ("Форма обучения", 20),
    ("Категория(и) слушателей", 30),
    ("Совершенствуемые компетенции", 30),
    ("Организация ДПО", 40),
    ("Подана", 17),
    ("Изменена", 17),
)


@dataclass(frozen=True)
class Export:
    rows: int
    content: bytes
    truncated: bool  # more than LIMIT matched: the first LIMIT are in the file


async def export_list(
    repo: Repositories,
    actor: Actor,
    *,
    status: Status | None,
    search: Search | None,
    narrowing: Narrowing,
    zone: ZoneInfo,
) -> Export:
    """The actor's list as filtered (what list_applications shows, every page), newest first."""
    page = await list_applications(
        repo, actor, status=status, search=search, narrowing=narrowing, size=LIMIT
    )
    applications = list(page.items)
    names = await organization_names(repo, {a.organization_id for a in applications})
    return Export(len(applications), workbook(applications, names, zone), page.total > LIMIT)


async def organization_names(repo: Repositories, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    result = await repo.session.execute(
        select(Organization.id, Organization.name).where(Organization.id.in_(ids))
    )
    return {int(key): str(name) for key, name in result.all()}


def local(moment: datetime | None, zone: ZoneInfo) -> datetime | None:
    """A moment as the local clock shows it, without a zone (what a spreadsheet keeps)."""
    if moment is None:
        return None
    return moment.astimezone(zone).replace(tzinfo=None)


def workbook(applications: list[Application], names: dict[int, str], zone: ZoneInfo) -> bytes:
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True, "constant_memory": True})
    sheet = book.add_worksheet("Заявки")
    bold = book.add_format({"bold": True})
    day = book.add_format({"num_format": DATE_FORMAT})
    moment = book.add_format({"num_format": TIME_FORMAT})
    for column, (title, width) in enumerate(COLUMNS):
        sheet.write_string(0, column, title, bold)
        sheet.set_column(column, column, width)
    sheet.freeze_panes(1, 0)
    for row, application in enumerate(applications, start=1):
        texts = (
            Status(application.status).label,
            application.applicant.full_name,
            names.get(application.organization_id, ""),
            application.group,
            application.description,
            application.program,
        )
        sheet.write_number(row, 0, application.number)
        for column, value in enumerate(texts, start=1):
            if value:
                sheet.write_string(row, column, value)
        write_date(sheet, row, 7, application.study_from, day)
        write_date(sheet, row, 8, application.study_to, day)
        for column, value in enumerate(
            (
                application.study_form,
                application.listener_categories,
                application.competencies,
                application.dpo_organization,
            ),
            start=9,
        ):
            if value:
                sheet.write_string(row, column, value)
        write_date(sheet, row, 13, local(application.created_at, zone), moment)
        write_date(sheet, row, 14, local(application.updated_at, zone), moment)
    if applications:
        sheet.autofilter(0, 0, len(applications), len(COLUMNS) - 1)
    book.close()
    return buffer.getvalue()


def write_date(
    sheet: xlsxwriter.worksheet.Worksheet,
    row: int,
    column: int,
    value: date | datetime | None,
    style: xlsxwriter.format.Format,
) -> None:
    if value is None:
        return
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    sheet.write_datetime(row, column, value, style)
