"""«📤 Выгрузить» laid out: the exported list as an .xlsx workbook (XlsxWriter), the columns of
the web module's card, dates as dd.mm.yyyy, times local."""

from __future__ import annotations

import io
from datetime import date, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from bot.texts import export as t
from bot.texts.domain import status_label
from services.export import Export

if TYPE_CHECKING:
    import xlsxwriter

DATE_FORMAT = "dd.mm.yyyy"
TIME_FORMAT = "dd.mm.yyyy hh:mm"


def local(moment: datetime | None, zone: ZoneInfo) -> datetime | None:
    """A moment as the local clock shows it, without a zone (what a spreadsheet keeps)."""
    if moment is None:
        return None
    return moment.astimezone(zone).replace(tzinfo=None)


def workbook(exported: Export, zone: ZoneInfo) -> bytes:
    applications = exported.applications
    import xlsxwriter  # here, not at start-up: 3 MiB that only an export needs

    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True, "constant_memory": True})
    sheet = book.add_worksheet(t.SHEET)
    bold = book.add_format({"bold": True})
    day = book.add_format({"num_format": DATE_FORMAT})
    moment = book.add_format({"num_format": TIME_FORMAT})
    for column, (title, width) in enumerate(t.COLUMNS):
        sheet.write_string(0, column, title, bold)
        sheet.set_column(column, column, width)
    sheet.freeze_panes(1, 0)
    for row, application in enumerate(applications, start=1):
        texts = (
            status_label(application.status),
            application.applicant_name,
            application.organization_name,
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
        sheet.autofilter(0, 0, len(applications), len(t.COLUMNS) - 1)
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
