"""Who hears about a change, written to the outbox in the transaction of the change itself.

Rows carry structured references (application, event); the messenger front end renders the text
when it sends, so the domain stays free of any messenger's markup. A person's push goes to the
messengers they chose (`Account.push_to`; by default the one bound last): one row per chat,
its channel the chat's messenger (storage.repositories.LinkRepo.recipients).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from services.decisions import enqueue_webhook, is_decision
from services.domain import Action, Role, Status
from services.outbox import new_row
from services.views import ApplicationView
from storage.models import Application, ApplicationEvent
from storage.repositories import Recipient, Repositories


class NotificationKind(StrEnum):
    NEW_APPLICATION = "new_application"
    STATUS_CHANGED = "status_changed"
    COMMENT = "comment"
    DIGEST = "digest"
    STAFF_DIGEST = "staff_digest"  # staff: approved applications waiting for inclusion


async def recipients_for(
    repo: Repositories,
    application: Application | ApplicationView,
    actor_role: Role | None,
    actor_id: int | None,
    *,
    withdrawn_after_approval: bool = False,
) -> list[int]:
    """Accounts to notify of a change by an actor in a role (None: the web module).

    The applicant hears of everything others do; the directors hear of what the applicant and
    the regional staff do; staff hear when an applicant cancels an application the director
    had approved (it was waiting for them); the actor never hears of their own action.
    """
    recipients: list[int] = []
    if actor_role is not Role.LISTENER:
        recipients.append(application.applicant_id)
    if actor_role in (Role.LISTENER, Role.STAFF):
        recipients += await repo.accounts.director_ids(application.organization_id)
    if actor_role is Role.LISTENER and withdrawn_after_approval:
        recipients += await repo.accounts.staff_ids()
    unique = dict.fromkeys(r for r in recipients if r != actor_id)
    return list(unique)


def push_row(
    recipient: Recipient,
    *,
    kind: NotificationKind,
    application_number: int | None,
    event_id: int | None,
    now: datetime,
    payload: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The outbox row of a push to one chat of a bound person; None if they muted pushes.

    A chat that blocked the bot gets its row held: it is sent when the user comes back.
    """
    if recipient.muted:
        return None
    return new_row(
        recipient.messenger,
        kind.value,
        now=now,
        account_id=recipient.account_id,
        chat_id=recipient.chat_id,
        application_number=application_number,
        event_id=event_id,
        payload=payload,
        held=recipient.blocked,
    )


async def enqueue_pushes(
    repo: Repositories,
    *,
    kind: NotificationKind,
    account_ids: list[int],
    application_number: int | None,
    event_id: int | None,
    now: datetime,
    payload: dict[str, Any] | None = None,
) -> int:
    """One outbox row per chat the bound, not muted recipients chose (push_row), written in
    one statement; returns how many were written."""
    rows = []
    for recipient in await repo.links.recipients(account_ids):
        row = push_row(
            recipient,
            kind=kind,
            application_number=application_number,
            event_id=event_id,
            now=now,
            payload=payload,
        )
        if row is not None:
            rows.append(row)
    await repo.outbox.add_many(rows)
    return len(rows)


async def notify_new_application(
    repo: Repositories, application: Application, *, now: datetime
) -> int:
    """Enqueue the push of a new application to the director(s) of its organisation."""
    directors = await repo.accounts.director_ids(application.organization_id)
    return await enqueue_pushes(
        repo,
        kind=NotificationKind.NEW_APPLICATION,
        account_ids=directors,
        application_number=application.number,
        event_id=None,
        now=now,
    )


async def notify_event(
    repo: Repositories,
    application: Application | ApplicationView,
    event: ApplicationEvent,
    *,
    actor_role: Role | None,
    now: datetime,
    decisions_webhook: bool = False,
) -> int:
    """Enqueue the pushes a history row causes; with `decisions_webhook` (DPO_WEBHOOK_URL is
    set) a decision is also queued for the web module's webhook."""
    if decisions_webhook and is_decision(event):
        enqueue_webhook(repo, event, now=now)
    kind = (
        NotificationKind.COMMENT
        if event.action == Action.COMMENT.value
        else NotificationKind.STATUS_CHANGED
    )
    withdrawn = event.action == Action.CANCEL.value and event.from_status == Status.APPROVED.value
    recipients = await recipients_for(
        repo,
        application,
        actor_role,
        event.actor_account_id,
        withdrawn_after_approval=withdrawn,
    )
    return await enqueue_pushes(
        repo,
        kind=kind,
        account_ids=recipients,
        application_number=application.number,
        event_id=event.id,
        now=now,
    )
