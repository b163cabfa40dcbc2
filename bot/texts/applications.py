"""Texts of the application screens (list, card, decisions, comments, history), in the seed
instruction's words. HTML parse mode: values are escaped by the screens, not here."""

from __future__ import annotations

from bot.conversation.intents import Facet, ListFilter
from bot.texts.plural import Plural
from services.domain import Action, Role, Status

NOT_SET = "Не указано"
TIME_FORMAT = "%d.%m.%Y %H:%M"
DATE_FORMAT = "%d.%m.%Y"

# --- list ----------------------------------------------------------------------------------

LIST_TITLES: dict[Role, str] = {
    Role.DIRECTOR: "<b>📥 Заявки</b>",
    Role.LISTENER: "<b>📄 Мои заявки</b>",
    Role.STAFF: "<b>📥 Заявки</b>",
}
LIST_STATUS = "Статус: «{status}»"
LIST_ALL_STATUSES = "Статус: все"
LIST_SEARCH = "Поиск: «{query}»"
LIST_TOTAL = "Найдено: {total}"
LIST_PAGE = "Страница {page} из {pages}"
# By the decisions the role can take on the list's statuses: a list where nothing can be
# decided (or the applicant's own) gets the plain hint.
LIST_HINT = "Нажмите на заявку, чтобы открыть её сведения, комментарии и историю."
LIST_HINTS: dict[frozenset[Action], str] = {
    frozenset({Action.APPROVE, Action.CANCEL}): (
        "Нажмите на заявку, чтобы открыть её сведения и одобрить или отменить её."
    ),
    frozenset({Action.INCLUDE, Action.CANCEL}): (
        "Нажмите на заявку, чтобы открыть её сведения и включить её в группу или отменить."
    ),
    frozenset({Action.APPROVE}): "Нажмите на заявку, чтобы открыть её сведения и одобрить её.",
    frozenset({Action.INCLUDE}): (
        "Нажмите на заявку, чтобы открыть её сведения и включить её в группу."
    ),
    frozenset({Action.CANCEL}): "Нажмите на заявку, чтобы открыть её сведения и отменить её.",
}
LIST_EMPTY = "Заявок с таким статусом нет."
LIST_EMPTY_SEARCH = "По этому запросу заявок не найдено."
LIST_ROW = "№{number} · {applicant} · {program}"
LIST_ROW_OWN = "№{number} · {program}"  # the applicant's own list: the name is always theirs
LIST_ROW_LIMIT = 60
# Rows whose programmes begin alike show the rest (when at least this much is shared), and the
# group where one programme has several groups on the page.
LIST_ROW_SHARED_MIN = 12
LIST_ROW_REST = "…{rest}"
LIST_ROW_GROUP = "{group} · {program}"

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

# --- staff's filters by organisation and programme ------------------------------------------

LIST_ORGANIZATION = "Организация: {name}"
LIST_PROGRAM = "Программа: {name}"
LIST_FACET_LIMIT = 200
BUTTON_FACETS: dict[Facet, str] = {
    Facet.ORGANIZATION: "🏫 Организация",
    Facet.PROGRAM: "📚 Программа",
}
FACET_TITLES: dict[Facet, str] = {
    Facet.ORGANIZATION: "<b>🏫 Выбор организации</b>",
    Facet.PROGRAM: "<b>📚 Выбор программы</b>",
}
FACET_HINTS: dict[Facet, str] = {
    Facet.ORGANIZATION: "Нажмите на номер организации — в списке останутся только её заявки.",
    Facet.PROGRAM: "Нажмите на номер программы — в списке останутся только заявки по ней.",
}
FACET_TOTALS: dict[Facet, str] = {
    Facet.ORGANIZATION: "Организаций: {total}",
    Facet.PROGRAM: "Программ: {total}",
}
FACET_EMPTY: dict[Facet, str] = {
    Facet.ORGANIZATION: "Ни у одной организации нет таких заявок.",
    Facet.PROGRAM: "Ни по одной программе нет таких заявок.",
}
FACET_ALL: dict[Facet, str] = {
    Facet.ORGANIZATION: "Все организации",
    Facet.PROGRAM: "Все программы",
}
FACET_GONE: dict[Facet, str] = {
    Facet.ORGANIZATION: "Организация не найдена, выберите другую.",
    Facet.PROGRAM: "Программа не найдена: заявки по ней больше нет, выберите другую.",
}
FACET_ENTRY = "{index}. {name} — {applications}"
APPLICATIONS = Plural("{count} заявка", "{count} заявки", "{count} заявок")
FACET_ENTRY_LIMIT = 300
FACET_BUTTON = "{index}. {name} · {count}"
FACET_BUTTON_LIMIT = 60

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
CARD_DECIDED_WEB_MODULE = "Статус изменён в модуле «Организация ДПО», {when}"
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
ACTOR_WEB_MODULE = "Модуль «Организация ДПО»"  # who acted, in history and comments

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
# A button of another of the person's roles (a push, a card from before a switch): acted on in
# that role.
ROLE_SWITCHED_FOR_PRESS = "Роль переключена: «{role}» — кнопка относится к ней"
STATUS_CHANGED = "ℹ️ Статус заявки изменился: было «{before}», теперь «{after}»."

# --- decisions -----------------------------------------------------------------------------

# Who hears of an actor's decisions and comments, by the actor's role (as
# services.notifications.recipients_for routes them).
NOTIFIED: dict[Role, str] = {
    Role.DIRECTOR: "Заявитель получит уведомление",
    Role.LISTENER: "Руководитель ОО получит уведомление",
    Role.STAFF: "Заявитель и руководитель ОО получат уведомление",
}
FOR_WHOM: dict[Role, str] = {
    Role.DIRECTOR: "для заявителя",
    Role.LISTENER: "для руководителя ОО",
    Role.STAFF: "для заявителя и руководителя ОО",
}
COMMENT_READERS: dict[Role, str] = {
    Role.DIRECTOR: "его получит заявитель",
    Role.LISTENER: "его получит руководитель ОО",
    Role.STAFF: "его получат заявитель и руководитель ОО",
}
SENT_TO: dict[Role, str] = {
    Role.DIRECTOR: "заявителю",
    Role.LISTENER: "руководителю ОО",
    Role.STAFF: "заявителю и руководителю ОО",
}

CANCEL_CONFIRM = "Отменить заявку №{number}? {notified}.\n\n{summary}"
BUTTON_CANCEL_YES = "Да, отменить"
BUTTON_CANCEL_NO = "Нет"

DECISION_PROMPT = (
    "<b>{title}</b>\n{summary}\n\n"
    "{ask} одним сообщением или нажмите «Без комментария».\n"
    "Чтобы передумать, нажмите «Отмена» или отправьте /cancel."
)
DECISION_TITLES: dict[Action, str] = {
    Action.APPROVE: "Одобрение заявки №{number}",
    Action.CANCEL: "Отмена заявки №{number}",
    Action.INCLUDE: "Включение заявки №{number} в группу",
}
DECISION_ASKS: dict[Action, str] = {
    Action.APPROVE: "Напишите комментарий {for_whom}",
    Action.CANCEL: "Напишите причину отмены {for_whom}",
    Action.INCLUDE: "Напишите комментарий {for_whom}",
}
SUMMARY = "{applicant} · {program}"
SUMMARY_LIMIT = 300
BUTTON_NO_COMMENT = "Без комментария"
BUTTON_ABORT = "Отмена"

DONE: dict[Action, str] = {
    Action.APPROVE: "✅ Заявка №{number} одобрена. {notified}{comment}.",
    Action.CANCEL: "❌ Заявка №{number} отменена. {notified}{comment}.",
    Action.INCLUDE: "👥 Заявка №{number} включена в группу. {notified}{comment}.",
    Action.COMMENT: "💬 Комментарий к заявке №{number} отправлен {sent_to}.",
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
    "Напишите комментарий одним сообщением — {readers}.\n"
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
    "create": "Заявка поступила",
    "reopen": "Возвращена в работу",
}
HISTORY_OTHER_ACTION = "Изменение"
HISTORY_ARRIVAL = "{action}, статус «{after}»"
# Other sources are messengers, named by bot.texts.messengers.
SOURCES: dict[str, str] = {
    "api": "модуль «Организация ДПО»",
    "cli": "оператор сервиса",
}
PAGE = "Страница {page} из {pages}"

# Budgets for cut fields, in characters of plain text: the fixed parts of a screen stay well
# under the rest of Telegram's 4096.
CARD_BUDGET = 3300
EVENTS_BUDGET = 3300
SEARCH_ECHO_LIMIT = 100

# --- a prompt no longer active, a text that came late, free text outside an input ----------

# The old prompt, edited when the person went elsewhere before answering it.
PROMPT_CLOSED: dict[str, str] = {
    "decision": "⌛ Этот запрос больше не активен: вы открыли другой экран. Решение по заявке "
    "№{number} не принято, заявка не изменена.",
    "comment": "⌛ Этот запрос больше не активен: вы открыли другой экран. Комментарий к заявке "
    "№{number} не отправлен.",
    "search": "⌛ Этот запрос поиска больше не активен: вы открыли другой экран.",
    "bulk": "⌛ Этот запрос больше не активен: вы открыли другой экран. Заявки не одобрены.",
}
BUTTON_OPEN_APPLICATION = "Открыть заявку №{number}"
BUTTON_BACK_TO_LIST = "◀ К списку"
# A text that arrived for a prompt no longer active.
LATE_TEXT = (
    "Это сообщение пришло, когда запрос {what} к заявке №{number} уже закрылся (вы открыли "
    "другой экран), поэтому ничего не сделано.\n\nВаш текст: «{text}»\n\nИспользовать его?"
)
LATE_WHAT: dict[Action, str] = {
    Action.APPROVE: "комментария к одобрению",
    Action.CANCEL: "причины отмены",
    Action.INCLUDE: "комментария к включению в группу",
    Action.COMMENT: "комментария",
}
BUTTON_USE_TEXT: dict[Action, str] = {
    Action.APPROVE: "✅ Одобрить с этим комментарием",
    Action.CANCEL: "❌ Отменить с этой причиной",
    Action.INCLUDE: "👥 Включить в группу с этим комментарием",
    Action.COMMENT: "💬 Отправить комментарием",
}
BUTTON_SEARCH_TEXT = "🔍 Искать заявки по этому тексту"
HELD_GONE = "Этот текст уже не сохранён: отправьте его ещё раз."
HELD_TEXT_LIMIT = 300  # characters of the text echoed back
# Free text outside an input.
SEARCH_BY_TEXT = "🔍 Ищу заявки по вашему сообщению (ФИО заявителя или номер заявки)."
OFFER_COMMENT = (
    "Ваш текст: «{text}»\n\nОтправить его комментарием к заявке? Комментарий увидит "
    "руководитель вашей организации. Выберите заявку:"
)
OFFER_COMMENT_MORE = (
    "Показаны {shown} последних заявок из {total}; к другой — откройте её в «📄 Мои заявки»."
)
NO_OWN_APPLICATIONS = (
    "У вас пока нет заявок, поэтому отправить текст комментарием некуда. Подать заявку можно в "
    "модуле «Организация ДПО»."
)
