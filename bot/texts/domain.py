"""The domain's words: statuses, roles, actions (as in the web module), and the refusals
services.domain and services.applications return as codes (services.domain.Reason)."""

from __future__ import annotations

from bot.texts.plural import Plural
from services.domain import Action, Reason, ReasonCode, Role, Status, rule_for

STATUS_LABELS: dict[Status, str] = {
    Status.NEW: "Не обработана",
    Status.APPROVED: "Подтверждена руководителем ОО",
    Status.CANCELLED: "Отменена",
    Status.INCLUDED: "Включен в группу",
}

ROLE_LABELS: dict[Role, str] = {
    Role.DIRECTOR: "Руководитель ОО",
    Role.LISTENER: "Слушатель",
    Role.STAFF: "Сотрудник ЦОПМ / ГБУ ДПО «ЧИРО»",
}

ACTION_LABELS: dict[Action, str] = {
    Action.APPROVE: "Одобрить",
    Action.CANCEL: "Отменить",
    Action.INCLUDE: "Включить в группу",
    Action.COMMENT: "Комментировать",
}

# The infinitive for refusals: «Заявку №… нельзя одобрить: …».
ACTION_VERBS: dict[Action, str] = {
    Action.APPROVE: "одобрить",
    Action.CANCEL: "отменить",
    Action.INCLUDE: "включить в группу",
    Action.COMMENT: "прокомментировать",
}

REFUSALS: dict[ReasonCode, str] = {
    ReasonCode.NO_ROLE: "У вас нет роли «{role}»",
    ReasonCode.NOT_FOR_ROLE: "Действие «{action}» недоступно для роли «{role}»",
    ReasonCode.NOT_OWN: "Заявка №{number} подана не вами",
    ReasonCode.OTHER_ORGANIZATION: "Заявка №{number} относится к другой организации",
    ReasonCode.WRONG_STATUS: "Заявку №{number} нельзя {verb}: статус «{status}»",
    # One wording for an application decided before the press and for the lost race.
    ReasonCode.ALREADY_DECIDED: "Заявка №{number} уже обработана: статус «{status}»",
    ReasonCode.NOT_FOUND: "Заявка №{number} не найдена",
    ReasonCode.COMMENT_TOO_LONG: "Комментарий слишком длинный: не больше {characters}",
    ReasonCode.COMMENT_EMPTY: "Комментарий пуст: напишите текст комментария",
    ReasonCode.OWN_APPLICATION: "Заявку №{number} подали вы сами: руководитель не принимает "
    "решение по своей заявке — её рассмотрят сотрудники ЦОПМ / ГБУ ДПО «ЧИРО»",
    ReasonCode.ROLE_NEEDED: "Действие «{action}» — для роли {roles}; у вас такой роли нет",
}


def status_label(status: Status) -> str:
    return STATUS_LABELS[status]


def role_label(role: Role) -> str:
    return ROLE_LABELS[role]


def refusal(reason: Reason) -> str:
    """The refusal in words (plain text: the caller escapes it for markup)."""
    return REFUSALS[reason.code].format(
        number=reason.number,
        role=ROLE_LABELS[reason.role] if reason.role is not None else "",
        action=ACTION_LABELS[reason.action] if reason.action is not None else "",
        verb=ACTION_VERBS[reason.action] if reason.action is not None else "",
        status=STATUS_LABELS[reason.status] if reason.status is not None else "",
        characters=CHARACTERS(reason.limit or 0),
        roles=" или ".join(
            f"«{ROLE_LABELS[role]}»"
            for role in Role
            if reason.action is not None and rule_for(reason.action, role) is not None
        ),
    )


CHARACTERS = Plural("{count} символа", "{count} символов", "{count} символов")  # «не больше …»
