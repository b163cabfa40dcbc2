"""The pieces the card, the lists and the pushes share: one status label, one «Не указано», one
way to shorten a name, to write dates and times, to name who acted."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from bot.texts import applications as t
from bot.texts.domain import ROLE_LABELS, STATUS_LABELS
from services.domain import Status
from services.views import EventView


def local_time(moment: datetime, zone: ZoneInfo) -> str:
    """A moment as the director's clock shows it: 06.09.2023 14:05."""
    return moment.astimezone(zone).strftime(t.TIME_FORMAT)


def short_name(full_name: str) -> str:
    """«Войсковая Юлия Олеговна» -> «Войсковая Ю. О.»."""
    surname, *rest = full_name.split() or [""]
    initials = " ".join(f"{part[0]}." for part in rest)
    return f"{surname} {initials}".strip()


def or_not_set(value: str | None) -> str:
    """A value as shown, whitespace folded; «Не указано» when missing."""
    value = " ".join((value or "").split())
    return value or t.NOT_SET


def study_dates(start: date | None, end: date | None) -> str:
    if start and end:
        return t.CARD_DATES.format(
            start=start.strftime(t.DATE_FORMAT), end=end.strftime(t.DATE_FORMAT)
        )
    if start:
        return t.CARD_DATE_FROM.format(start=start.strftime(t.DATE_FORMAT))
    if end:
        return t.CARD_DATE_TO.format(end=end.strftime(t.DATE_FORMAT))
    return t.NOT_SET


def status_label(status: Status | None) -> str:
    return STATUS_LABELS[status] if status is not None else t.NOT_SET


def actor_label(event: EventView) -> str:
    """Who acted, as plain text: «Петров Пётр Петрович (Руководитель ОО)», or the web module."""
    if event.actor_role is None:
        return t.ACTOR_WEB_MODULE
    return t.ACTOR.format(name=event.actor_name, role=ROLE_LABELS[event.actor_role])
