"""Plain data of what screens and pushes show: frozen values loaded from the database, never
ORM rows, so layouts are pure functions that tests can feed directly."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

from services.domain import ApplicationRef, Role, Status
from storage.models import Application, ApplicationEvent


@dataclass(frozen=True)
class ApplicationView:
    """An application as on the web card (Рисунок 7 and 8 of the instruction)."""

    number: int
    status: Status
    applicant_id: int
    applicant_name: str
    organization_id: int
    organization_name: str
    program: str | None = None
    group: str | None = None
    description: str | None = None
    study_from: date | None = None
    study_to: date | None = None
    study_form: str | None = None
    listener_categories: str | None = None
    competencies: str | None = None
    dpo_organization: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def ref(self) -> ApplicationRef:
        return ApplicationRef.of(self)


_VIEW_FIELDS = frozenset(field.name for field in fields(ApplicationView))


@dataclass(frozen=True)
class EventView:
    """One row of an application's history: a transition or a comment."""

    id: int
    action: str
    actor_name: str
    actor_role: Role | None
    from_status: Status | None
    to_status: Status | None
    comment: str | None
    source: str
    created_at: datetime


def application_view(application: Application) -> ApplicationView:
    return ApplicationView(
        number=application.number,
        status=Status(application.status),
        applicant_id=application.applicant_id,
        applicant_name=application.applicant.full_name,
        organization_id=application.organization_id,
        organization_name=application.organization.name,
        program=application.program,
        group=application.group,
        description=application.description,
        study_from=application.study_from,
        study_to=application.study_to,
        study_form=application.study_form,
        listener_categories=application.listener_categories,
        competencies=application.competencies,
        dpo_organization=application.dpo_organization,
        created_at=application.created_at,
        updated_at=application.updated_at,
    )


def view_of(row: Mapping[Any, Any]) -> ApplicationView:
    """An application from the plain values of a Core query labelled as ApplicationView's
    fields (ApplicationRepo.view_row, ApplicationRepo.search; other values, such as a page's
    total, are left out): a card's or an export's row has them all; a list's row has no
    organisation's name (lists do not read it) and no details."""
    values = {key: value for key, value in row.items() if key in _VIEW_FIELDS}
    return ApplicationView(**{"organization_name": "", **values, "status": Status(row["status"])})


def _status(code: str | None) -> Status | None:
    try:
        return Status(code) if code else None
    except ValueError:
        return None


def _role(code: str | None) -> Role | None:
    try:
        return Role(code) if code else None
    except ValueError:
        return None


def event_view(event: ApplicationEvent) -> EventView:
    return EventView(
        id=event.id,
        action=event.action,
        actor_name=event.actor_name,
        actor_role=_role(event.actor_role),
        from_status=_status(event.from_status),
        to_status=_status(event.to_status),
        comment=event.comment,
        source=event.source,
        created_at=event.created_at,
    )
