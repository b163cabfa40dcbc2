"""The texts of bulk approval on the director's «Не обработана» list."""

from __future__ import annotations

from bot.texts.plural import Plural

BUTTON_ALL = "✅ Одобрить все ({count})"
# More on the list than one approval takes: the first {count} of them, in the list's order.
BUTTON_FIRST = "✅ Одобрить первые {count}"
BUTTON_PICK = "☑️ Выбрать несколько"
BUTTON_PICKED = "✅ Одобрить выбранные ({count})"
BUTTON_WITHOUT_COMMENT = "✅ Одобрить без комментария"
BUTTON_WITH_COMMENT = "✍️ Одобрить с комментарием для всех"
BUTTON_BACK = "◀ К списку"
BUTTON_NO_COMMENT = "Без комментария"
BUTTON_ABORT = "Отмена"
PICKED_MARK = "☑️ "
UNPICKED_MARK = "▫️ "

PICK_TITLE = (
    "<b>Выбор заявок для одобрения</b>\nСтатус: «Не обработана»\nОтметьте заявки, затем нажмите "
    "«✅ Одобрить выбранные». Выбрано: {picked}"
)
PICK_PAGE = "Страница {page} из {pages}"
CONFIRM_TITLE = "<b>Одобрить заявки?</b>\nЗаявок к одобрению: {count}"
CONFIRM_ROW = "№{number} · {applicant} · {program}"
CONFIRM_MORE = "…и ещё {count}"
CONFIRM_HINT = (
    "Каждая заявка получит статус «Подтверждена руководителем ОО», заявитель получит "
    "уведомление. Комментарий, если добавите, будет один для всех."
)
CONFIRM_EXCLUDED = "Не войдут (решение по своей заявке принимают сотрудники): {numbers}"
CONFIRM_FIRST = (
    "За один раз одобряются не больше {limit} заявок: это первые {limit} из {total} по порядку "
    "списка. Остальные останутся в статусе «Не обработана»."
)
NOTHING_TO_APPROVE = "Нет заявок со статусом «Не обработана», которые вы можете одобрить."
NOTHING_PICKED = "Отметьте хотя бы одну заявку."
PICK_LIMIT = (
    "Выбрано уже {limit}: за один раз одобряются не больше {limit} заявок. Одобрите выбранные, "
    "затем выберите остальные."
)
GONE = "Список для одобрения уже не сохранён: откройте его заново."
COMMENT_PROMPT = (
    "<b>Одобрение заявок: {count}</b>\nНапишите один комментарий для всех — его увидят "
    "заявители. Или нажмите «Без комментария»."
)
RESULT = "Одобрено {approved}"
# «уже обработана 1: №39733», «уже обработаны 2: …», «уже обработаны 5: …».
RESULT_ALREADY = Plural(
    "уже обработана {count}", "уже обработаны {count}", "уже обработаны {count}"
)
RESULT_REFUSED = Plural("не одобрена {count}", "не одобрены {count}", "не одобрены {count}")
RESULT_NUMBERS = "{what}: {numbers}"
RESULT_TOAST = "Одобрено: {approved}"
FOR_DIRECTORS = "Массовое одобрение — для роли «Руководитель ОО»."
NUMBERS_SHOWN = 20  # numbers listed in the result, then «…»
ROW_PROGRAM_LIMIT = 40
ROW_APPLICANT_LIMIT = 30  # with the programme's 40, forty rows stay within a message
CONFIRM_SHOWN = 40  # applicants named in the confirmation, then «…и ещё N»
