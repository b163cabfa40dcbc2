"""Texts of the application screens (list, card, decisions, comments, history), in the seed
instruction's words. HTML parse mode: values are escaped by the screens, not here."""

from __future__ import annotations

from bot.callbacks import ListFilter
from services.domain import Action, Status

NOT_SET = "Не указано"
TIME_FORMAT = "%d.%m.%Y %H:%M"
DATE_FORMAT = "%d.%m.%Y"

# --- list ----------------------------------------------------------------------------------

LIST_TITLE = "<b>📥 Заявки</b>"
LIST_STATUS = "Статус: «{status}»"
LIST_ALL_STATUSES = "Статус: все"
LIST_SEARCH = "Поиск: «{query}»"
LIST_TOTAL = "Найдено: {total}"
LIST_PAGE = "Страница {page} из {pages}"
LIST_HINT = "Нажмите на заявку, чтобы открыть её сведения и одобрить или отменить её."
LIST_EMPTY = "Заявок с таким статусом нет."
LIST_EMPTY_SEARCH = "По этому запросу заявок не найдено."
LIST_ROW = "№{number} · {applicant} · {program}"
LIST_ROW_LIMIT = 60

FILTER_LABELS: dict[ListFilter, str] = {
    ListFilter.NEW: "Не обработана",
    ListFilter.APPROVED: "Подтверждена",
    ListFilter.CANCELLED: "Отменена",
    ListFilter.INCLUDED: "Включен в группу",
    ListFilter.ALL: "Все",
}
FILTER_CURRENT = "• {label}"
STATUS_ICONS: dict[Status, str] = {
    Status.NEW: "🆕",
    Status.APPROVED: "✅",
    Status.CANCELLED: "❌",
    Status.INCLUDED: "👥",
}

BUTTON_PREVIOUS = "◀"
BUTTON_NEXT = "▶"
BUTTON_PAGE = "{page}/{pages}"
BUTTON_SEARCH = "🔍 Поиск"
BUTTON_CLEAR_SEARCH = "✖ Сбросить поиск"

SEARCH_PROMPT = (
    "<b>🔍 Поиск заявки</b>\n"
    "Напишите фамилию или имя заявителя (можно начало) или номер заявки, например 39744.\n"
    "Чтобы передумать, нажмите «Отмена» или отправьте /cancel."
)
SEARCH_ABORTED = "Поиск отменён."
SEARCH_NOT_FOUND_NUMBER = "Заявка №{number} не найдена среди заявок, доступных вам."

# --- card ----------------------------------------------------------------------------------

CARD_TITLE = "<b>Заявка №{number}</b>"
CARD_STATUS = "Статус: <b>{status}</b>"
CARD_DECIDED = "Изменил(а) статус: {actor}, {when}"
CARD_DECIDED_COMMENT = "Комментарий: {comment}"
CARD_GENERAL = "<b>Общие сведения</b>"
CARD_FIELD = "{label}: {value}"
CARD_CREATED = "Подана: {created} · изменена: {updated}"
CARD_APPLICANT = "Заявитель"
CARD_ORGANIZATION = "ОО"
CARD_STUDY_DATES = "Даты обучения"
CARD_DATES = "{start} - {end}"
CARD_DATE_FROM = "с {start}"
CARD_DATE_TO = "по {end}"
# The fields of «Общие сведения», in the order of the web card (Рисунок 8).
CARD_FIELDS: tuple[tuple[str, str], ...] = (
    ("group", "Группа"),
    ("description", "Описание"),
    ("program", "Программа"),
    ("study_dates", CARD_STUDY_DATES),
    ("study_form", "Форма обучения"),
    ("listener_categories", "Категория(и) слушателей"),
    ("competencies", "Совершенствуемые компетенции"),
    ("dpo_organization", "Организация ДПО"),
)

ACTOR = "{name} ({role})"
ACTOR_WEB_MODULE = "модуль «Организация ДПО»"

BUTTON_ACTIONS: dict[Action, str] = {
    Action.APPROVE: "✅ Одобрить",
    Action.CANCEL: "❌ Отменить",
    Action.INCLUDE: "👥 Включить в группу",
}
BUTTON_COMMENTS = "💬 Комментарии"
BUTTON_COMMENTS_COUNT = "💬 Комментарии ({count})"
BUTTON_HISTORY = "🕓 История"
BUTTON_TO_LIST = "◀ К списку"
BUTTON_TO_CARD = "◀ К заявке"

NOT_VISIBLE = "Заявка №{number} не найдена или недоступна вам."
STATUS_CHANGED = "ℹ️ Статус заявки изменился: было «{before}», теперь «{after}»."

# --- decisions -----------------------------------------------------------------------------

CANCEL_CONFIRM = "Отменить заявку №{number}? Заявитель получит уведомление.\n\n{summary}"
BUTTON_CANCEL_YES = "Да, отменить"
BUTTON_CANCEL_NO = "Нет"

APPROVE_PROMPT = (
    "<b>Одобрение заявки №{number}</b>\n{summary}\n\n"
    "Напишите комментарий для заявителя одним сообщением или нажмите «Без комментария».\n"
    "Чтобы передумать, нажмите «Отмена» или отправьте /cancel."
)
CANCEL_PROMPT = (
    "<b>Отмена заявки №{number}</b>\n{summary}\n\n"
    "Напишите причину отмены для заявителя одним сообщением или нажмите «Без комментария».\n"
    "Чтобы передумать, нажмите «Отмена» или отправьте /cancel."
)
SUMMARY = "{applicant} · {program}"
SUMMARY_LIMIT = 300
BUTTON_NO_COMMENT = "Без комментария"
BUTTON_ABORT = "Отмена"

DONE: dict[Action, str] = {
    Action.APPROVE: "✅ Заявка №{number} одобрена. Заявитель получит уведомление{comment}.",
    Action.CANCEL: "❌ Заявка №{number} отменена. Заявитель получит уведомление{comment}.",
    Action.INCLUDE: (
        "👥 Заявка №{number} включена в группу. Заявитель получит уведомление{comment}."
    ),
    Action.COMMENT: "💬 Комментарий к заявке №{number} отправлен заявителю.",
}
DONE_WITH_COMMENT = " с вашим комментарием"
DONE_TOAST: dict[Action, str] = {
    Action.APPROVE: "Заявка одобрена",
    Action.CANCEL: "Заявка отменена",
    Action.INCLUDE: "Заявка включена в группу",
    Action.COMMENT: "Комментарий отправлен",
}
INPUT_ABORTED = "Действие отменено, заявка не изменена."
NOTHING_TO_CANCEL = "Сейчас нечего отменять. Главное меню — /menu."
TEXT_ONLY = "Отправьте текст одним сообщением или нажмите «Отмена» (/cancel)."
FIX_AND_RESEND = "{problem}. Исправьте текст и отправьте ещё раз или нажмите «Отмена» (/cancel)."

# --- comments and history ------------------------------------------------------------------

COMMENTS_TITLE = "<b>💬 Комментарии · заявка №{number}</b>"
COMMENTS_EMPTY = "Комментариев пока нет."
COMMENT_ENTRY = "<b>{when}</b> · {actor}\n{comment}"
BUTTON_ADD_COMMENT = "✍️ Написать комментарий"
COMMENT_PROMPT = (
    "<b>Комментарий к заявке №{number}</b>\n{summary}\n\n"
    "Напишите комментарий одним сообщением — его получит заявитель.\n"
    "Чтобы передумать, нажмите «Отмена» или отправьте /cancel."
)

HISTORY_TITLE = "<b>🕓 История действий · заявка №{number}</b>"
HISTORY_EMPTY = "Действий с заявкой пока не было."
HISTORY_ENTRY = "<b>{when}</b> · {actor}\n{what}"
HISTORY_TRANSITION = "{action}: «{before}» → «{after}»"
HISTORY_COMMENT = "Комментарий: {comment}"
HISTORY_SOURCE = "Источник: {source}"
HISTORY_ACTIONS: dict[str, str] = {
    Action.APPROVE.value: "Одобрена",
    Action.CANCEL.value: "Отменена",
    Action.INCLUDE.value: "Включена в группу",
    Action.COMMENT.value: "Комментарий",
}
HISTORY_OTHER_ACTION = "Изменение"
SOURCES: dict[str, str] = {
    "telegram": "Telegram",
    "api": "модуль «Организация ДПО»",
    "cli": "оператор сервиса",
}
PAGE = "Страница {page} из {pages}"

# Budgets for cut fields, in characters of plain text: the fixed parts of a screen stay well
# under the rest of Telegram's 4096.
CARD_BUDGET = 3300
EVENTS_BUDGET = 3300
SEARCH_ECHO_LIMIT = 100
