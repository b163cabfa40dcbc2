"""Every text the bot shows, in one place, in the seed instruction's words (Russian, in the
shared markup of bot/screens/markup.py)."""

from __future__ import annotations

from bot.texts.plural import Plural

SOMETHING_WENT_WRONG = "Что-то пошло не так, попробуйте ещё раз."
# On the card when a press failed: nothing of it was saved.
NOT_SAVED = "⚠️ Не получилось: ничего не изменено. Попробуйте ещё раз."

BOT_DESCRIPTION = (
    "Бот модуля «Организация ДПО» ГИС «Образование в Челябинской области»: руководители ОО "
    "одобряют и отменяют заявки педагогов, заявители узнают об изменении статуса заявки."
)

COMMAND_START = "Начать работу, главное меню"
COMMAND_HELP = "Помощь"

WELCOME_UNLINKED = (
    "Здравствуйте! Это бот модуля «Организация ДПО» ГИС «Образование в Челябинской области».\n\n"
    "Здесь руководитель ОО одобряет или отменяет заявки педагогов на оценку профессиональных "
    "компетенций, а заявитель узнаёт об изменении статуса своей заявки.\n\n"
    "Чтобы начать, привяжите {messenger} к своей учётной записи модуля:\n"
    "1. Войдите в модуль «Организация ДПО» (https://dpo.edu-74.ru/) через Госуслуги.\n"
    "2. В личном кабинете откройте «Профиль» и нажмите «Подключить {messenger}».\n"
    "3. Перейдите по показанной одноразовой ссылке — она откроет этот бот и привяжет учётную "
    "запись. Ссылка действует {ttl_minutes} мин."
)

HELP_UNLINKED = (
    "<b>Помощь</b>\n\n"
    "Бот работает с заявками модуля «Организация ДПО» после привязки к вашей учётной записи, "
    "в которую вы входите через Госуслуги.\n\n"
    "Как привязать: войдите в модуль «Организация ДПО», откройте «Профиль» и нажмите "
    "«Подключить {messenger}», затем перейдите по одноразовой ссылке.\n\n"
    "Команды:\n/start — начать работу\n/help — эта справка"
)

UNKNOWN_UNLINKED = (
    "Сначала привяжите {messenger} к учётной записи модуля «Организация ДПО». "
    "Как это сделать — /help."
)


MENU_TITLE = "<b>Главное меню</b>\nВы вошли как {name}, роль «{role}»."
MENU_APPLICATIONS_DIRECTOR = Plural(
    "📥 Заявки ({count} новая)", "📥 Заявки ({count} новые)", "📥 Заявки ({count} новых)"
)
MENU_APPLICATIONS_LISTENER = "📄 Мои заявки"
MENU_APPLICATIONS_STAFF = "📥 Заявки ({count} на включение)"
MENU_NOTIFICATIONS = "🔔 Уведомления"
MENU_PROFILE = "👤 Профиль / сменить роль"
MENU_HELP = "❓ Помощь"
MENU_BACK = "◀ В главное меню"

UNKNOWN_COMMAND = "Такой команды нет. Главное меню — /menu, справка — /help."
NOT_UNDERSTOOD = (
    "Фото, голосовые сообщения, стикеры и файлы бот не читает: он понимает текст и кнопки. "
    "Главное меню — /menu."
)

# The last-resort answer to a button no handler took: from before an update, a role switch, or
# forged.
STALE_BUTTON = "Кнопка устарела, откройте меню заново: /menu"

# The answer to a press that changes nothing on screen, where the messenger refuses an empty
# answer (MAX).
PRESS_TAKEN = "Готово"
