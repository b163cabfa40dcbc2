"""The configured time zone in words: «по времени Екатеринбурга, UTC+5».

Russia's zones are named by their city (genitive, as in «по времени Москвы»); any other zone
by its UTC offset alone («по времени UTC+5:30»).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

# The IANA zones of Russia (tzdata's zone1970.tab for RU), by the city whose time they keep.
CITIES: dict[str, str] = {
    "Europe/Kaliningrad": "Калининграда",
    "Europe/Moscow": "Москвы",
    "Europe/Simferopol": "Симферополя",
    "Europe/Kirov": "Кирова",
    "Europe/Volgograd": "Волгограда",
    "Europe/Astrakhan": "Астрахани",
    "Europe/Saratov": "Саратова",
    "Europe/Ulyanovsk": "Ульяновска",
    "Europe/Samara": "Самары",
    "Asia/Yekaterinburg": "Екатеринбурга",
    "Asia/Omsk": "Омска",
    "Asia/Novosibirsk": "Новосибирска",
    "Asia/Barnaul": "Барнаула",
    "Asia/Tomsk": "Томска",
    "Asia/Novokuznetsk": "Новокузнецка",
    "Asia/Krasnoyarsk": "Красноярска",
    "Asia/Irkutsk": "Иркутска",
    "Asia/Chita": "Читы",
    "Asia/Yakutsk": "Якутска",
    "Asia/Khandyga": "Хандыги",
    "Asia/Vladivostok": "Владивостока",
    "Asia/Ust-Nera": "Усть-Неры",
    "Asia/Magadan": "Магадана",
    "Asia/Sakhalin": "Южно-Сахалинска",
    "Asia/Srednekolymsk": "Среднеколымска",
    "Asia/Kamchatka": "Петропавловска-Камчатского",
    "Asia/Anadyr": "Анадыря",
}

OF_CITY = "по времени {city}, {offset}"
OF_OFFSET = "по времени {offset}"


def utc_offset(offset: timedelta) -> str:
    """«UTC+5», «UTC-3:30», «UTC»."""
    minutes = round(offset.total_seconds() / 60)
    if minutes == 0:
        return "UTC"
    sign = "+" if minutes > 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{sign}{hours}" + (f":{rest:02d}" if rest else "")


def zone_phrase(zone: ZoneInfo, at: datetime) -> str:
    """How a time in `zone` is named at the moment `at` (the offset of that moment)."""
    offset = utc_offset(at.astimezone(zone).utcoffset() or timedelta())
    city = CITIES.get(zone.key)
    if city is None:
        return OF_OFFSET.format(offset=offset)
    return OF_CITY.format(city=city, offset=offset)
