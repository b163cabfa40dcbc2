"""Texts of «🔔 Уведомления»: muting pushes and the directors' daily digest."""

from __future__ import annotations

TITLE = "<b>🔔 Уведомления</b>"
PUSHES_ON = (
    "Уведомления <b>включены</b>: бот сообщает о новых заявках, изменении статуса заявок "
    "и новых комментариях."
)
PUSHES_OFF = (
    "Уведомления <b>выключены</b>: бот ничего не присылает сам. Заявки по-прежнему доступны "
    "в главном меню."
)
DIGEST_ON = (
    "Ежедневная сводка по заявкам «Не обработана» <b>включена</b>: приходит в {time} "
    "{zone}, если есть необработанные заявки."
)
DIGEST_OFF = "Ежедневная сводка по заявкам «Не обработана» <b>выключена</b>."
STAFF_DIGEST_ON = (
    "Ежедневная сводка по заявкам, ожидающим включения в группу, <b>включена</b>: приходит в "
    "{time} {zone}, если такие заявки есть."
)
STAFF_DIGEST_OFF = "Ежедневная сводка по заявкам, ожидающим включения в группу, <b>выключена</b>."
DIGEST_MUTED = "Пока уведомления выключены, сводка тоже не приходит."

# Where pushes go, for a person bound in both messengers (Account.push_to).
PUSH_TARGET = "Уведомления приходят в <b>{where}</b>."
PUSH_TARGET_AND = " и "  # «Telegram и MAX»
PUSH_CHOOSE = "Выберите, куда присылать уведомления:"
BUTTON_PUSH_TO = "В {messenger}"
BUTTON_PUSH_BOTH = "В оба"
PUSH_SET = "Уведомления: {where}"

BUTTON_MUTE = "🔕 Выключить уведомления"
BUTTON_UNMUTE = "🔔 Включить уведомления"
BUTTON_DIGEST_OFF = "📋 Не присылать сводку"
BUTTON_DIGEST_ON = "📋 Присылать сводку"

MUTED = "Уведомления выключены"
UNMUTED = "Уведомления включены"
DIGEST_DISABLED = "Сводка выключена"
DIGEST_ENABLED = "Сводка включена"
DIGEST_FOR_DIRECTORS = (
    "Ежедневная сводка приходит только руководителям ОО и сотрудникам ЦОПМ / ГБУ ДПО «ЧИРО»."
)

# On unmuting: one message sums up what changed while pushes were off.
MUTED_SUMMARY = "<b>Пока уведомления были выключены</b> (с {since}):"
MUTED_ARRIVED = "новых заявок: {count}"
MUTED_DECISIONS = "изменений статуса: {count}"
MUTED_COMMENTS = "новых комментариев: {count}"
MUTED_NOTHING = (
    "Пока уведомления были выключены (с {since}), по вашим заявкам ничего не изменилось."
)
MUTED_LISTS = "Открыть список:"
BUTTON_LIST_NEW = "📥 Не обработана"
BUTTON_LIST_APPROVED = "📥 Подтверждена"
BUTTON_LIST_ALL = "📄 Все заявки"
