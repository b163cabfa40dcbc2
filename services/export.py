"""What «📤 Выгрузить» exports: the actor's list as it is filtered, all its pages, with the
organisations' names (bot/screens/export.py lays it out as an .xlsx workbook)."""

from __future__ import annotations

from dataclasses import dataclass

from services.domain import Actor, Status
from services.queries import Narrowing, Search, list_rows
from services.views import ApplicationView
from storage.repositories import Repositories

LIMIT = 20_000  # rows one export takes at most


@dataclass(frozen=True)
class Export:
    applications: list[ApplicationView]  # newest first, every field of the card
    truncated: bool  # more than LIMIT matched: these are the first LIMIT


async def export_list(
    repo: Repositories,
    actor: Actor,
    *,
    status: Status | None,
    search: Search | None,
    narrowing: Narrowing,
) -> Export:
    """The actor's list as filtered (what list_rows shows, every page), newest first."""
    page = await list_rows(
        repo, actor, status=status, search=search, narrowing=narrowing, size=LIMIT, whole=True
    )
    return Export(list(page.items), page.total > LIMIT)
