"""Decisions made here (in Telegram or on the command line) going back to the web module.

A decision is a history row written by a person in a role (approve, cancel, include, comment),
not by the web module itself. The web module gets them two ways: a pull feed paged by the history
row's id, and, when DPO_WEBHOOK_URL is set, a signed POST of each decision from the outbox
(channel "webhook"), written in the same transaction as the decision.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from pydantic import BaseModel, Field

from services.domain import Source
from services.outbox import new_row
from storage.models import ApplicationEvent
from storage.repositories import Repositories

WEBHOOK_CHANNEL = "webhook"
WEBHOOK_KIND = "decision"
FEED_MAX_LIMIT = 1000


class Decision(BaseModel):
    """One decision: the same shape in the pull feed and in the webhook's body."""

    id: int = Field(description="Номер события; растёт монотонно, служит курсором")
    application_number: int = Field(description="Номер заявки")
    action: str = Field(description="approve, cancel, include или comment")
    from_status: str | None = Field(description="Статус до решения")
    to_status: str | None = Field(description="Статус после решения")
    comment: str | None = Field(description="Комментарий для заявителя")
    actor_account_id: int | None = Field(description="Учётная запись того, кто принял решение")
    actor_name: str = Field(description="ФИО того, кто принял решение")
    actor_role: str = Field(description="Роль, в которой принято решение")
    source: str = Field(description="telegram или cli")
    created_at: datetime = Field(description="Когда принято решение (UTC)")


class DecisionsPage(BaseModel):
    decisions: list[Decision]
    next_cursor: int = Field(description="Передайте как after, чтобы получить следующие")
    has_more: bool = Field(description="Есть ли ещё решения после этой страницы")


def is_decision(event: ApplicationEvent) -> bool:
    """Made by a person in a role, not by the web module (its rows have no role)."""
    return event.source != Source.API.value and event.actor_role is not None


def decision_of(event: ApplicationEvent) -> Decision:
    assert event.actor_role is not None
    return Decision(
        id=event.id,
        application_number=event.application_number,
        action=event.action,
        from_status=event.from_status,
        to_status=event.to_status,
        comment=event.comment,
        actor_account_id=event.actor_account_id,
        actor_name=event.actor_name,
        actor_role=event.actor_role,
        source=event.source,
        created_at=event.created_at,
    )


async def page(repo: Repositories, *, after: int, limit: int) -> DecisionsPage:
    """Decisions with an id above `after`, oldest first, at most `limit` of them."""
    rows = await repo.events.decisions(after=after, limit=limit + 1)
    decisions = [decision_of(row) for row in rows[:limit]]
    return DecisionsPage(
        decisions=decisions,
        next_cursor=decisions[-1].id if decisions else after,
        has_more=len(rows) > limit,
    )


def enqueue_webhook(repo: Repositories, event: ApplicationEvent, *, now: datetime) -> None:
    """The outbox row from which the decision is POSTed to DPO_WEBHOOK_URL; the body is the
    Decision rendered from the history row when it is sent."""
    repo.outbox.add(
        **new_row(
            WEBHOOK_CHANNEL,
            WEBHOOK_KIND,
            now=now,
            application_number=event.application_number,
            event_id=event.id,
        )
    )


def webhook_body(decision: Decision) -> bytes:
    """Compact UTF-8 JSON: exactly the bytes that are signed and sent."""
    return decision.model_dump_json().encode()


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of timestamp + "." + body>`, the X-Signature header."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"
