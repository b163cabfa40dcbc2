"""Acting on applications: the one function every front end calls to approve, cancel, include
or comment, and the typed outcome it returns."""

from __future__ import annotations

from dataclasses import dataclass, replace

from services.clock import Clock, SystemClock
from services.domain import (
    Action,
    Actor,
    ApplicationRef,
    Reason,
    ReasonCode,
    Role,
    Rule,
    Source,
    Status,
    check,
    status_refusal,
)
from services.notifications import notify_event
from services.views import ApplicationView, view_of
from storage.models import Application, ApplicationEvent
from storage.repositories import Repositories

COMMENT_MAX_LENGTH = 1000


@dataclass(frozen=True)
class Done:
    """The action took effect: one history row written, its notifications enqueued; the
    application as it is after it."""

    application: ApplicationView
    event: ApplicationEvent
    from_status: Status
    to_status: Status


@dataclass(frozen=True)
class Refused:
    """The action is not allowed; nothing changed."""

    reason: Reason


@dataclass(frozen=True)
class LostRace:
    """Someone else changed the application first; nothing changed here."""

    current_status: Status
    reason: Reason  # the same words as the domain's refusal of a decided application


Outcome = Done | Refused | LostRace


def ref(application: Application | ApplicationView) -> ApplicationRef:
    return ApplicationRef.of(application)


async def menu_count(repo: Repositories, actor: Actor) -> int:
    """What waits for the actor: a director's new applications, staff's approved ones."""
    if actor.role is Role.DIRECTOR and actor.organization_id is not None:
        return await repo.applications.count(
            status=Status.NEW.value, organization_id=actor.organization_id
        )
    if actor.role is Role.STAFF:
        return await repo.applications.count(status=Status.APPROVED.value)
    return 0


def normalize_comment(comment: str | None) -> str | None:
    if comment is None:
        return None
    comment = comment.strip()
    return comment or None


def comment_problem(action: Action, comment: str | None) -> Reason | None:
    """Why a (normalised) comment cannot go with the action, or None if it can.

    Front ends ask before acting, to let the user fix the text without losing the input.
    """
    if comment is not None and len(comment) > COMMENT_MAX_LENGTH:
        return Reason(ReasonCode.COMMENT_TOO_LONG, limit=COMMENT_MAX_LENGTH)
    if action is Action.COMMENT and comment is None:
        return Reason(ReasonCode.COMMENT_EMPTY)
    return None


def lost_race(number: int, action: Action, current: Status) -> LostRace:
    """Someone was first: said as the domain says it of an application decided already."""
    return LostRace(current_status=current, reason=status_refusal(number, action, current))


def not_found(number: int) -> Refused:
    return Refused(Reason(ReasonCode.NOT_FOUND, number=number))


async def perform_action(
    repo: Repositories,
    actor: Actor,
    number: int,
    action: Action,
    *,
    comment: str | None = None,
    source: Source = Source.TELEGRAM,
    expected_status: Status | None = None,
    clock: Clock | None = None,
    decisions_webhook: bool = False,
    self_decisions: bool = False,
) -> Outcome:
    """Perform an action for an actor: check, change conditionally, record, notify.

    Everything happens in the caller's transaction: the status change, the history row and the
    outbox rows are committed together or not at all. `expected_status` is the status the actor
    saw (on a card); if the application moved since, the outcome is LostRace. With
    `decisions_webhook` (pass `settings.decisions_webhook`) the decision is also queued for the
    web module's webhook. `self_decisions` (the setting DIRECTOR_DECIDES_OWN) lets a director decide
    his own application.
    """
    now = (clock or SystemClock()).now()
    comment = normalize_comment(comment)
    problem = comment_problem(action, comment)
    if problem is not None:
        return Refused(problem)

    found = await repo.applications.view_row(number)  # plain values: no ORM entities
    if found is None:
        return not_found(number)
    application = view_of(found)
    current = application.status
    if expected_status is not None and current is not expected_status:
        return lost_race(number, action, current)
    verdict = check(actor, action, ref(application), self_decisions=self_decisions)
    if not isinstance(verdict, Rule):
        return Refused(verdict)

    to_status = verdict.to_status or current
    if verdict.to_status is None:
        await repo.applications.touch(number, now)
    elif not await repo.applications.transition(number, current.value, to_status.value, now):
        status = await repo.applications.current_status(number)
        return lost_race(number, action, Status(status)) if status else not_found(number)

    event = await repo.events.add(
        application_number=number,
        actor_account_id=actor.account_id,
        actor_name=actor.full_name,
        actor_role=actor.role.value,
        action=action.value,
        from_status=current.value,
        to_status=to_status.value,
        comment=comment,
        source=source.value,
        created_at=now,
    )
    application = replace(application, status=to_status, updated_at=now)  # as the row is now
    await notify_event(
        repo,
        application,
        event,
        actor_role=actor.role,
        now=now,
        decisions_webhook=decisions_webhook,
    )
    return Done(application=application, event=event, from_status=current, to_status=to_status)


@dataclass(frozen=True)
class BulkOutcome:
    """What a bulk approval did: each application went through perform_action on its own."""

    approved: list[int]
    already_processed: list[int]  # someone was first: the status is no longer «Не обработана»
    refused: list[tuple[int, Reason]]  # not allowed (the reason), nothing changed


async def approve_many(
    repo: Repositories,
    actor: Actor,
    numbers: list[int],
    *,
    comment: str | None = None,
    clock: Clock | None = None,
    decisions_webhook: bool = False,
    self_decisions: bool = False,
) -> BulkOutcome:
    """Approve several applications with one (optional) comment, in the caller's transaction:
    each through the same race-safe perform_action, expecting «Не обработана», with its own
    history row, pushes and decisions-webhook entry."""
    approved: list[int] = []
    already: list[int] = []
    refused: list[tuple[int, Reason]] = []
    for number in dict.fromkeys(numbers):
        outcome = await perform_action(
            repo,
            actor,
            number,
            Action.APPROVE,
            comment=comment,
            expected_status=Status.NEW,
            clock=clock,
            decisions_webhook=decisions_webhook,
            self_decisions=self_decisions,
        )
        if isinstance(outcome, Done):
            approved.append(number)
        elif isinstance(outcome, LostRace):
            already.append(number)
        else:
            refused.append((number, outcome.reason))
    return BulkOutcome(approved, already, refused)
