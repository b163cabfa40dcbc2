"""Every text the bot shows, in one place, in the seed instruction's words (Russian, HTML)."""

from __future__ import annotations

from html import escape

SOMETHING_WENT_WRONG = "Что-то пошло не так, попробуйте ещё раз."

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
    "Чтобы начать, привяжите Telegram к своей учётной записи модуля:\n"
    "1. Войдите в модуль «Организация ДПО» (https://dpo.edu-74.ru/) через Госуслуги.\n"
    "2. В личном кабинете откройте «Профиль» и нажмите «Подключить Telegram».\n"
    "3. Перейдите по показанной одноразовой ссылке — она откроет этот бот и привяжет учётную "
    "запись. Ссылка действует {ttl_minutes} мин."
)

HELP_UNLINKED = (
    "<b>Помощь</b>\n\n"
    "Бот работает с заявками модуля «Организация ДПО» после привязки к вашей учётной записи, "
    "в которую вы входите через Госуслуги.\n\n"
    "Как привязать: войдите в модуль «Организация ДПО», откройте «Профиль» и нажмите "
    "«Подключить Telegram», затем перейдите по одноразовой ссылке.\n\n"
    "Команды:\n/start — начать работу\n/help — эта справка"
)

UNKNOWN_UNLINKED = (
    "Сначала привяжите Telegram к учётной записи модуля «Организация ДПО». Как это сделать — /help."
)


def html(value: object) -> str:
    """Escape a value for Telegram's HTML parse mode."""
    return escape(str(value), quote=False)


MENU_TITLE = "<b>Главное меню</b>\nВы вошли как {name}, роль «{role}»."
MENU_APPLICATIONS_DIRECTOR = "📥 Заявки ({count} новых)"
MENU_APPLICATIONS_LISTENER = "📄 Мои заявки"
MENU_APPLICATIONS_STAFF = "📥 Заявки ({count} на включение)"
MENU_NOTIFICATIONS = "🔔 Уведомления"
MENU_PROFILE = "👤 Профиль / сменить роль"
MENU_HELP = "❓ Помощь"
MENU_BACK = "◀ В главное меню"

# The last-resort answer to a button no handler took: from before an update, a role switch, or
# forged.
STALE_BUTTON = "Кнопка устарела, откройте меню заново: /menu"

ELLIPSIS = "…"


def utf16_length(text: str) -> int:
    """Length as Telegram counts it: in UTF-16 code units, so a character beyond the Basic
    Multilingual Plane (most emoji: 📥, 👤) counts 2. Its limits — 4096 for a message, 200 for a
    callback answer — are in these units."""
    return len(text.encode("utf-16-le")) // 2


def _utf16_prefix(value: str, units: int) -> str:
    """The longest start of `value` within `units` UTF-16 code units (no emoji split in two)."""
    return value.encode("utf-16-le")[: 2 * units].decode("utf-16-le", errors="ignore")


def shorten(value: str, limit: int) -> str:
    """Cut plain text to at most `limit` UTF-16 code units, marking the cut with «…».

    Cut before escaping for HTML, so a cut never splits an entity or a tag.
    """
    if utf16_length(value) <= limit:
        return value
    if limit <= 0:
        return ""
    return _utf16_prefix(value, limit - 1).rstrip() + ELLIPSIS


def fit(values: list[str], budget: int) -> list[str]:
    """Shorten the longest values first until they fit `budget` UTF-16 code units together.

    Short values stay whole; the long ones are cut to one common length, as long as possible.
    """
    lengths = [utf16_length(value) for value in values]
    if sum(lengths) <= budget:
        return values
    remaining, cap = budget, 0
    for position, length in enumerate(sorted(lengths)):
        share = remaining // (len(lengths) - position)
        if length > share:
            cap = share
            break
        remaining -= length
    return [shorten(value, cap) for value in values]
