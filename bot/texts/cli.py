"""Texts of the command line (python -m bot …): its help and what it prints to the operator.

The import's per-line report and the settings' start-up errors stay next to their checks
(bot/cli/importer.py, bot/settings.py): see the allow-list in tests/test_texts.py.
"""

from __future__ import annotations

DESCRIPTION = "Бот модуля «Организация ДПО» для {messenger}"
HELP_RUN = "запустить бота, веб-сервер и рассылку (по умолчанию)"
HELP_DISPATCHER = (
    "только рассылка уведомлений, ежедневная сводка и удаление устаревших данных "
    "(без приёма сообщений)"
)
HELP_MIGRATE = "применить миграции базы данных"
HELP_LINK_TOKEN = (
    "выпустить одноразовую ссылку для привязки мессенджера к учётной записи: t.me для Telegram, "
    "max.ru для MAX (для каждого, чей токен задан)"
)
HELP_ACCOUNT_ID = "id учётной записи"
HELP_UNLINK = (
    "снять привязки мессенджеров учётной записи (как DELETE "
    "/api/v1/accounts/ID/messengers/MESSENGER): после этого её можно привязать к другому "
    "аккаунту по новой ссылке"
)
HELP_UNLINK_MESSENGER = "только привязку этого мессенджера (по умолчанию — все привязки)"
HELP_IMPORT = "загрузить ОО, учётные записи и заявки из выгрузки JSON Lines или CSV"
DESCRIPTION_IMPORT = (
    "Формат файла — в docs/IMPORT.md. Ошибочные строки перечисляются с номерами; "
    "код выхода 1, если такие были."
)
HELP_FILE = "файл .jsonl или .csv"
HELP_NO_NOTIFY = "не уведомлять руководителей о новых заявках (для первой загрузки)"
HELP_DEMO = (
    "загрузить демонстрационные данные и напечатать ссылки для входа руководителя и заявителя"
)

MIGRATED = "Миграции применены."
BOT_API_UNREACHABLE = "Не удалось связаться с {messenger} Bot API, попробуйте позже."
ACCOUNT_NOT_FOUND = "Учётная запись {account_id} не найдена."
LINK_EXPIRES = "Ссылка одноразовая, действует до {until} {zone}."
NOT_LINKED = "Учётная запись {account_id} не привязана к {messenger}."
NOT_LINKED_ANYWHERE = "Учётная запись {account_id} не привязана ни к одному мессенджеру."
OTHER_LINK = "{messenger}: {link}"
UNLINKED = "Привязка {messenger} учётной записи {account_id} снята, чат получит сообщение об этом."

# Start-up errors of the Telegram front end (one line each, as bot/settings.py writes its own).
REDIS_UNREACHABLE = (
    "Ошибка: Redis по адресу из REDIS_URL не отвечает ({error}) — проверьте адрес и что Redis "
    "запущен"
)
BOT_TOKEN_REJECTED = (
    "Ошибка настройки: BOT_TOKEN отклонён сервером Telegram — проверьте токен у @BotFather"
)
WEBHOOK_REJECTED = (
    "Ошибка настройки: PUBLIC_URL задана неверно — Telegram не принял адрес вебхука {url}: {error}"
)

# Start-up errors of the MAX front end.
MAX_BOT_TOKEN_REJECTED = (
    "Ошибка настройки: MAX_BOT_TOKEN отклонён сервером MAX — проверьте токен в разделе «Чат-боты» "
    "платформы MAX для партнёров"
)
MAX_WEBHOOK_REJECTED = (
    "Ошибка настройки: PUBLIC_URL задана неверно — MAX не принял адрес вебхука {url} ({error}); "
    "MAX доставляет вебхуки только по HTTPS с сертификатом доверенного центра "
    "(docs/DEPLOYMENT.md)"
)

# The import's progress (bot/cli/progress.py): a bar on a terminal, a line of counts otherwise.
IMPORT_COUNTS = "Строк прочитано: {read}, загружено: {applied}, отклонено: {refused}"
IMPORT_READING = "Чтение"
IMPORT_LOADING = "Загрузка"
IMPORT_UNIT = " стр."
IMPORT_BAR_COUNTS = "прочитано {read}, загружено {applied}, отклонено {refused}"

# python -m bot demo
DEMO_BOT_API_UNREACHABLE = (
    "Не удалось связаться с сервером Bot API (TELEGRAM_API_URL): без имени бота ссылки не "
    "составить. Проверьте сеть и повторите."
)
DEMO_LOADED = (
    "Демонстрационные данные загружены: ОО — {organizations}, учётных записей — {accounts}, "
    "заявок — {applications}.\n\n"
    "Руководитель ОО ({director}, {school}):\n{director_link}\n\n"
    "Заявитель ({applicant}):\n{applicant_link}\n\n"
    "Ссылки одноразовые и действуют {ttl_minutes} мин; новые — повторным запуском "
    "python -m bot demo."
)
