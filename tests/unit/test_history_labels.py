"""History rows written by the web module read as what happened, not as a bare «Изменение»."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from bot.screens.applications import history_entry
from services.views import EventView, event_view
from tests.factories import web_event

ORIGIN = "Модуль «Организация ДПО»"


def event(action: str, before: str | None, after: str) -> EventView:
    return event_view(web_event(action, before, after))


def test_an_arrived_application_reads_as_arrived_with_its_status() -> None:
    text = history_entry(event("create", None, "new"), ORIGIN, "", ZoneInfo("Asia/Yekaterinburg"))
    assert "Заявка поступила, статус «Не обработана»" in text
    assert "Не указано" not in text
    assert "Источник: модуль «Организация ДПО»" in text


def test_a_reopened_application_reads_as_returned() -> None:
    text = history_entry(
        event("reopen", "cancelled", "new"), ORIGIN, "", ZoneInfo("Asia/Yekaterinburg")
    )
    assert "Возвращена в работу: «Отменена» → «Не обработана»" in text
