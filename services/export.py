"""What «📤 Выгрузить» exports: the actor's list as it is filtered, all its pages, with the
organisations' names (bot/screens/export.py lays it out as an .xlsx workbook)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from services.domain import Actor, Status
from services.queries import Narrowing, Search, list_applications
from storage.models import Application, Organization
from storage.repositories import Repositories

LIMIT = 20_000  # rows one export takes at most


@dataclass(frozen=True)
class Export:
    applications: list[Application]  # newest first
    organizations: dict[int, str]  # the names of their organisations, by id
    truncated: bool  # more than LIMIT matched: these are the first LIMIT


async def export_list(
    repo: Repositories,
    actor: Actor,
    *,
    status: Status | None,
    search: Search | None,
    narrowing: Narrowing,
) -> Export:
    """The actor's list as filtered (what list_applications shows, every page), newest first."""
    page = await list_applications(
        repo, actor, status=status, search=search, narrowing=narrowing, size=LIMIT
    )
    applications = list(page.items)
    names = await organization_names(repo, {a.organization_id for a in applications})
    return Export(applications, names, page.total > LIMIT)


async def organization_names(repo: Repositories, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    result = await repo.session.execute(
        select(Organization.id, Organization.name).where(Organization.id.in_(ids))
    )
    return {int(key): str(name) for key, name in result.all()}
