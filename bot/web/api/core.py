"""What an endpoint is: its route, its pydantic models (which also make the OpenAPI document) and
its handler, called with validated input inside one database transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.links import LinkBuilder
from bot.settings import Settings
from bot.web.metrics import Metrics
from services.clock import Clock
from storage.repositories import Repositories

PREFIX = "/api/v1"


# Clears a messenger user's chat state kept outside the database, (messenger, user_id,
# chat_id): bot.process.app.conversation_eraser; None when the conversation's state is in the
# database itself.
ForgetConversation = Callable[[str, int, int], Awaitable[None]]


@dataclass(frozen=True)
class ApiContext:
    """Shared objects the API works with (no globals)."""

    settings: Settings
    session_factory: async_sessionmaker[AsyncSession]
    clock: Clock
    # A deep-link builder per configured messenger (bot.links.deep_links).
    deep_links: Mapping[str, LinkBuilder]
    metrics: Metrics | None = None
    forget_conversation: ForgetConversation | None = None


@dataclass
class Call:
    """One validated request: its path parameters, query and body as the endpoint's models."""

    context: ApiContext
    repo: Repositories
    path: Any = None
    query: Any = None
    body: Any = None


@dataclass(frozen=True)
class Reply:
    status: int
    body: BaseModel


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # under PREFIX, in aiohttp's and OpenAPI's {name} syntax
    operation_id: str
    summary: str
    handler: Callable[[Call], Awaitable[Reply]]
    responses: dict[int, tuple[type[BaseModel], str]]  # success statuses
    path_model: type[BaseModel] | None = None
    query_model: type[BaseModel] | None = None
    body_model: type[BaseModel] | None = None
    description: str = ""
    errors: dict[int, str] = field(default_factory=dict)  # endpoint-specific error statuses
