"""«📤 Выгрузить»: a list as it is filtered, every page, sent as an .xlsx document, through the
real Dispatcher and the Bot API double (which keeps the uploaded bytes)."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.director_data import BY_STATUS, DIRECTOR, LISTENER, seed_applications
from tests.harness import BotHarness
from tests.xlsx import read_rows

pytestmark = pytest.mark.every_backend  # a filtered list, every page: the database's order

HEADER = [
    "Номер",
    "Статус",
    "Заявитель",
    "ОО",
    "Группа",
    "Описание",
    "Программа",
    "Дата начала обучения",
    "Дата окончания обучения",
    "Форма обучения",
    "Категория(и) слушателей",
    "Совершенствуемые компетенции",
    "Организация ДПО",
    "Подана",
    "Изменена",
]


@pytest.fixture
async def school(seeded: None, session_factory: async_sessionmaker[AsyncSession]) -> None:
    await seed_applications(session_factory)


def excel_day(serial: str) -> str:
    """A spreadsheet's day number as dd.mm.yyyy (what the cell's format shows)."""
    from datetime import date, timedelta

    day = date(1899, 12, 30) + timedelta(days=int(float(serial)))
    return day.strftime("%d.%m.%Y")


@pytest.mark.usefixtures("school")
async def test_a_director_exports_the_list_as_filtered_every_page(harness: BotHarness) -> None:
    menu = await harness.send(DIRECTOR, "/menu")
    listing = await harness.press(DIRECTOR, menu.buttons()[0][0])
    everything = await harness.press(DIRECTOR, "Все")  # 15 applications on 3 pages
    assert ["📤 Выгрузить"] in everything.buttons()
    before = len(harness.api.chat(DIRECTOR))
    await harness.press(DIRECTOR, "📤 Выгрузить", listing.message_id)
    assert harness.last_answer() == {"text": "Список выгружен: 15"}
    [sent] = harness.api.chat(DIRECTOR)[before:]
    assert sent.document is not None
    assert sent.document["file_name"].endswith(".xlsx")
    assert sent.text.startswith("Заявки: 15. 📥 Заявки. Статус: все")
    rows = read_rows(sent.document["content"])
    assert rows[0] == HEADER
    assert len(rows) == 16
    numbers = [int(row[0]) for row in rows[1:]]
    assert sorted(numbers) == sorted(n for ns in BY_STATUS.values() for n in ns)
    first = rows[1]
    assert first[1] in {
        "Не обработана",
        "Подтверждена руководителем ОО",
        "Отменена",
        "Включен в группу",
    }
    assert first[2] in {"Войсковая Юлия Олеговна", "Байдуганова Александра Юрьевна"}
    assert first[3] == "МАОУ «СОШ № 10» г. Челябинска"
    assert excel_day(first[7]) == "06.09.2023"
    assert excel_day(first[8]) == "10.09.2023"
    assert harness.api.message(DIRECTOR, listing.message_id).text == everything.text  # stays
    harness.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_the_export_follows_the_filter_and_says_when_there_is_nothing(
    harness: BotHarness,
) -> None:
    menu = await harness.send(DIRECTOR, "/menu")
    await harness.press(DIRECTOR, menu.buttons()[0][0])
    before = len(harness.api.chat(DIRECTOR))
    await harness.press(DIRECTOR, "📤 Выгрузить")
    [sent] = harness.api.chat(DIRECTOR)[before:]
    rows = read_rows(sent.document["content"] if sent.document else b"")
    assert sorted(int(row[0]) for row in rows[1:]) == sorted(BY_STATUS["new"])
    assert {row[1] for row in rows[1:]} == {"Не обработана"}
    # A search that finds nothing: no button to export it, and a forged press is told.
    empty = await harness.send(DIRECTOR, "Несуществующая")
    assert ["📤 Выгрузить"] not in empty.buttons()
    from bot.conversation.intents import ListAction, ListFilter, ListIntent

    forged = ListIntent(action=ListAction.EXPORT, status_filter=ListFilter.ALL, search=True)
    await harness.press_data(DIRECTOR, forged.pack(), empty.message_id)
    assert harness.last_answer() == {
        "text": "Выгружать нечего: в списке нет заявок. Измените фильтр или поиск.",
        "show_alert": True,
    }
    harness.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_staff_export_across_organisations_and_applicants_cannot(
    harness: BotHarness,
) -> None:
    menu = await harness.send(1007, "/menu")
    await harness.press(1007, menu.buttons()[0][0])
    await harness.press(1007, "Все")
    before = len(harness.api.chat(1007))
    await harness.press(1007, "📤 Выгрузить")
    [sent] = harness.api.chat(1007)[before:]
    rows = read_rows(sent.document["content"] if sent.document else b"")
    assert {row[3] for row in rows[1:]} == {
        "МАОУ «СОШ № 10» г. Челябинска",
        "МАОУ «СОШ № 20» г. Челябинска",
    }
    own = await harness.send(LISTENER, "/menu")
    mine = await harness.press(LISTENER, own.buttons()[0][0])
    assert ["📤 Выгрузить"] not in mine.buttons()
    harness.assert_no_errors()
