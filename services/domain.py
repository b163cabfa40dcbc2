"""Statuses, roles, actions and the one table of who may do what from which status."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import Protocol


class Status(StrEnum):
    NEW = "new"
    APPROVED = "approved"
    CANCELLED = "cancelled"
    INCLUDED = "included"


class Role(StrEnum):
    DIRECTOR = "director"
    LISTENER = "listener"
    STAFF = "staff"


class Action(StrEnum):
    APPROVE = "approve"
    CANCEL = "cancel"
    INCLUDE = "include"
    COMMENT = "comment"


class Source(StrEnum):
    """Where a change came from, as recorded in history."""

    TELEGRAM = "telegram"
    MAX = "max"
    API = "api"
    CLI = "cli"


class Scope(Enum):
    """Which applications a rule covers for the actor."""

    OWN_ORGANIZATION = "own_organization"  # the applicant's organisation is the actor's
    OWN_APPLICATION = "own_application"  # the actor is the applicant
    ANY = "any"


ALL_STATUSES = frozenset(Status)
TERMINAL_STATUSES = frozenset({Status.CANCELLED, Status.INCLUDED})


@dataclass(frozen=True)
class Rule:
    action: Action
    role: Role
    scope: Scope
    from_statuses: frozenset[Status]
    to_status: Status | None  # None: the status stays (comments)


# docs/PRODUCT.md "Statuses and who may change them", one row per line of its table.
_NEW, _APPROVED = Status.NEW, Status.APPROVED
_ORG, _OWN, _ANY = Scope.OWN_ORGANIZATION, Scope.OWN_APPLICATION, Scope.ANY
RULES: tuple[Rule, ...] = (
    Rule(Action.APPROVE, Role.DIRECTOR, _ORG, frozenset({_NEW}), Status.APPROVED),
    Rule(Action.CANCEL, Role.DIRECTOR, _ORG, frozenset({_NEW}), Status.CANCELLED),
    Rule(Action.CANCEL, Role.LISTENER, _OWN, frozenset({_NEW, _APPROVED}), Status.CANCELLED),
    Rule(Action.INCLUDE, Role.STAFF, _ANY, frozenset({_APPROVED}), Status.INCLUDED),
    Rule(Action.CANCEL, Role.STAFF, _ANY, frozenset({_NEW, _APPROVED}), Status.CANCELLED),
    Rule(Action.COMMENT, Role.DIRECTOR, _ORG, ALL_STATUSES, None),
    Rule(Action.COMMENT, Role.LISTENER, _OWN, ALL_STATUSES, None),
    Rule(Action.COMMENT, Role.STAFF, _ANY, ALL_STATUSES, None),
)

_RULES_BY_KEY: dict[tuple[Action, Role], Rule] = {(r.action, r.role): r for r in RULES}


def rule_for(action: Action, role: Role) -> Rule | None:
    return _RULES_BY_KEY.get((action, role))


@dataclass(frozen=True)
class Actor:
    """Someone acting on applications: an account in its active role."""

    account_id: int
    full_name: str
    role: Role
    roles: frozenset[Role]
    organization_id: int | None


class _Application(Protocol):
    """An application as stored or as shown: what an ApplicationRef is made of."""

    @property
    def number(self) -> int: ...
    @property
    def applicant_id(self) -> int: ...
    @property
    def organization_id(self) -> int: ...
    @property
    def status(self) -> str: ...


@dataclass(frozen=True)
class ApplicationRef:
    """What the permission check needs to know about an application."""

    number: int
    applicant_id: int
    organization_id: int
    status: Status

    @classmethod
    def of(cls, application: _Application) -> ApplicationRef:
        return cls(
            number=application.number,
            applicant_id=application.applicant_id,
            organization_id=application.organization_id,
            status=Status(application.status),
        )


def in_scope(actor: Actor, scope: Scope, application: ApplicationRef) -> bool:
    if scope is Scope.ANY:
        return True
    if scope is Scope.OWN_APPLICATION:
        return application.applicant_id == actor.account_id
    return (
        actor.organization_id is not None and application.organization_id == actor.organization_id
    )


def can_view(actor: Actor, application: ApplicationRef) -> bool:
    """Whether the actor in the active role may see the application at all."""
    if actor.role not in actor.roles:
        return False
    return any(
        in_scope(actor, rule.scope, application) for rule in RULES if rule.role is actor.role
    )


class ReasonCode(StrEnum):
    """Why an action is refused; the words are the text catalogue's (bot/texts)."""

    NO_ROLE = "no_role"  # the active role is not among the account's roles: `role`
    NOT_FOR_ROLE = "not_for_role"  # no rule for the action in the role: `action`, `role`
    NOT_OWN = "not_own"  # the application is someone else's: `number`
    OTHER_ORGANIZATION = "other_organization"  # of another organisation: `number`
    WRONG_STATUS = "wrong_status"  # not yet in a status the action starts from: `number`,
    # `action`, `status`
    ALREADY_DECIDED = "already_decided"  # decided already, or meanwhile (a lost race):
    # `number`, `status`
    NOT_FOUND = "not_found"  # `number`
    COMMENT_TOO_LONG = "comment_too_long"  # `limit`
    COMMENT_EMPTY = "comment_empty"
    OWN_APPLICATION = "own_application"  # a director's decision on his own: `number`
    ROLE_NEEDED = "role_needed"  # no role of the person has the action: `action`


@dataclass(frozen=True)
class Reason:
    """A refusal with what its text names."""

    code: ReasonCode
    number: int | None = None
    action: Action | None = None
    role: Role | None = None
    status: Status | None = None
    limit: int | None = None


# A director decides the applications of his organisation, but not his own: staff decide it
# (DIRECTOR_DECIDES_OWN lets a region whose rules allow it decide it). Comments are not
# decisions.
DECISIONS = frozenset({Action.APPROVE, Action.CANCEL, Action.INCLUDE})


def own_decision_refusal(
    actor: Actor, action: Action, application: ApplicationRef, *, self_decisions: bool = False
) -> Reason | None:
    """Why a director may not make this decision on his own application, or None."""
    if (
        self_decisions
        or actor.role is not Role.DIRECTOR
        or action not in DECISIONS
        or application.applicant_id != actor.account_id
    ):
        return None
    return Reason(ReasonCode.OWN_APPLICATION, number=application.number)


def role_needed(actor: Actor, action: Action) -> Reason:
    """Why the active role cannot take the action; if no role of the person can, which role
    it needs (the text names the roles that have a rule for it)."""
    if any(rule_for(action, role) is not None for role in actor.roles):
        return Reason(ReasonCode.NOT_FOR_ROLE, action=action, role=actor.role)
    return Reason(ReasonCode.ROLE_NEEDED, action=action)


def check(
    actor: Actor, action: Action, application: ApplicationRef, *, self_decisions: bool = False
) -> Rule | Reason:
    """The rule that allows the action, or the reason it is refused. A director's decision on
    his own application is refused unless `self_decisions` (the setting DIRECTOR_DECIDES_OWN)."""
    number = application.number
    if actor.role not in actor.roles:
        return Reason(ReasonCode.NO_ROLE, role=actor.role)
    rule = rule_for(action, actor.role)
    if rule is None:
        return role_needed(actor, action)
    if not in_scope(actor, rule.scope, application):
        if rule.scope is Scope.OWN_APPLICATION:
            return Reason(ReasonCode.NOT_OWN, number=number)
        return Reason(ReasonCode.OTHER_ORGANIZATION, number=number)
    own = own_decision_refusal(actor, action, application, self_decisions=self_decisions)
    if own is not None:
        return own
    if application.status not in rule.from_statuses:
        return status_refusal(number, action, application.status)
    return rule


def status_refusal(number: int, action: Action, status: Status) -> Reason:
    """An action the status does not allow: not yet («Не обработана» for staff's
    inclusion), or no more: decided already, by someone or meanwhile (one wording for both)."""
    if status is Status.NEW:
        return Reason(ReasonCode.WRONG_STATUS, number=number, action=action, status=status)
    return Reason(ReasonCode.ALREADY_DECIDED, number=number, status=status)


def allowed_actions(
    actor: Actor, application: ApplicationRef, *, self_decisions: bool = False
) -> list[Action]:
    """Actions the actor may take now, in the order buttons are shown."""
    return [
        action
        for action in Action
        if isinstance(check(actor, action, application, self_decisions=self_decisions), Rule)
    ]
