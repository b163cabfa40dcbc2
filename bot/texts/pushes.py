"""Texts of the pushes (notifications), in the seed instruction's words (Russian, HTML).

Values are escaped by the renderers (bot/conversation/pushes.py) before they are put in.
"""

from __future__ import annotations

NOT_SPECIFIED = "Не указано"

NEW_APPLICATION_TITLE = "📥 <b>Новая заявка №{number}</b>"
STATUS_CHANGED_TITLE = "🔔 <b>Заявка №{number}: статус изменён</b>"
COMMENT_TITLE = "💬 <b>Новый комментарий к заявке №{number}</b>"
DIGEST_TITLE = "📋 <b>Ежедневная сводка</b>"

APPLICANT = "Заявитель: {name}"
PROGRAM = "Программа: {program}"
STUDY_DATES = "Даты обучения: {dates}"
STATUS = "Статус: «{status}»"
STATUS_MOVE = "Статус: «{from_status}» → <b>«{to_status}»</b>"
ACTOR = "Кто: {name}, {role}"
ACTOR_ROLE = "Кто: {role}"
# Changes the web module made: no person to name.
ACTOR_WEB_MODULE = "Изменено в модуле «Организация ДПО»"
ACTOR_WEB_MODULE_COMMENT = "Из модуля «Организация ДПО»"
COMMENT = "Комментарий: {comment}"
COMMENT_ON_CARD = "К заявке есть комментарий — откройте «Подробнее»."
COMMENT_TEXT_ON_CARD = "Текст комментария — в карточке заявки, откройте «Подробнее»."
ALREADY_PROCESSED = "Заявка уже обработана."
# A director's own application (DIRECTOR_DECIDES_OWN off): no decision buttons in its push.
OWN_APPLICATION = (
    "Эту заявку подали вы сами: руководитель не принимает решение по своей заявке — её "
    "рассмотрят сотрудники ЦОПМ / ГБУ ДПО «ЧИРО»."
)

DIGEST_COUNT = "Заявок «Не обработана» в вашей организации: <b>{count}</b>"
DIGEST_LINE = "№{number} · {name} · {program}"
DIGEST_LINE_NO_NAME = "№{number} · {program}"
DIGEST_MORE = "…и ещё {count}"
DIGEST_HINT = "Одобрить или отменить их можно в разделе «Заявки»."

BUTTON_APPROVE = "✅ Одобрить"
BUTTON_CANCEL = "❌ Отменить"
BUTTON_OPEN = "Подробнее"
BUTTON_APPLICATIONS = "📥 Открыть заявки"

# Staff's daily digest: director-approved applications waiting for «Включить в группу».
STAFF_DIGEST_TITLE = "📋 <b>Ежедневная сводка: ожидают включения в группу</b>"
STAFF_DIGEST_COUNT = "Заявок «Подтверждена руководителем ОО»: <b>{count}</b>"
STAFF_DIGEST_LINE = "• {organization} — {count}"
STAFF_DIGEST_HINT = "Включить их в группу можно в разделе «Заявки»."
STAFF_DIGEST_ORGANIZATIONS = 15  # organisations listed, then «…и ещё N»
STAFF_DIGEST_NAME_LENGTH = 80
