"""The texts of «📤 Выгрузить»: a list sent as an .xlsx document."""

from __future__ import annotations

BUTTON_EXPORT = "📤 Выгрузить"
NOTHING = "Выгружать нечего: в списке нет заявок. Измените фильтр или поиск."
CAPTION = "Заявки: {count}. {filters}"
CAPTION_TRUNCATED = " В файле первые {limit}: сузьте список фильтром или поиском."
DONE = "Список выгружен: {count}"
FOR_ROLES = "Выгрузка списка — для руководителей ОО и сотрудников ЦОПМ / ГБУ ДПО «ЧИРО»."
FILE_NAME = "zayavki-{day}.xlsx"
