"""History rows written by the web module read as what happened, not as a bare «Изменение»."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from bot.screens.applications import history_entry
from services.views import EventView, event_view
from storage.models import ApplicationEvent
from tests.factories import T0

ORIGIN = "Модуль «Организация ДПО»"


def event(action: str, before: str | None, after: str) -> EventView:
    return event_view(
        ApplicationEvent(
            id=1,
            application_number=39744,
            actor_name=ORIGIN,
            action=action,
            from_status=before,
            to_status=after,
            source="api",
            created_at=T0,
        )
    )


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
