"""The text catalogue (bot/texts): every Russian string lives there, numbers take their plural
forms, texts name the messenger they are shown in, the time zone is said in words, and the
screens built from it read right (issue 13 item 5, issue 15 defect 7)."""

from __future__ import annotations

import ast
import re
import string
from datetime import UTC, datetime, time
from pathlib import Path
from types import ModuleType
from zoneinfo import ZoneInfo

import pytest

import bot.texts
import bot.texts.applications
import bot.texts.domain
import bot.texts.linking
import bot.texts.notifications
import bot.texts.pushes
from bot.conversation.intents import AppAction, AppIntent, ListFilter, ListIntent
from bot.screens import applications as screens
from bot.screens import menu, pushes
from bot.screens.screen import Screen
from bot.texts.messengers import say
from bot.texts.plural import Form, Plural, form, plural
from bot.texts.zones import CITIES, zone_phrase
from services.domain import Actor, Role, Status
from services.queries import Page
from services.views import ApplicationView, EventView, event_view
from tests import factories

ROOT = Path(__file__).resolve().parents[2]
CYRILLIC = re.compile("[А-Яа-яЁё]")

# Where a Cyrillic string literal may stand outside bot/texts/, and why. Keep it short: a text
# a person reads in the messenger, on the sign-in pages or from the command line belongs in
# the catalogue.
ALLOWED: dict[str, str] = {
    "tests/": "test data and the expected words",
    "storage/migrations/": "history as it was written",
    "bench/": "synthetic data of the benchmarks (names, towns)",
    "bot/cli/demo.py": "the demonstration data set (people, schools, programmes); what the "
    "command prints is in bot/texts/cli.py",
    "bot/web/api/": "the integration API's contract for the web module's developers: error "
    "messages and OpenAPI descriptions, documented in docs/API.md",
    "services/integration.py": "the integration API's schemas (OpenAPI descriptions, "
    "validation messages) and the web module's name stored in history; services cannot "
    "import bot/",
    "services/decisions.py": "the decisions feed's schema (OpenAPI descriptions)",
    "bot/settings.py": "start-up errors of the configuration, next to each setting's check",
    "bot/cli/importer.py": "the import's per-line report to the operator, next to its checks",
}
# Single letters that are data, not words: «ё» folded to «е» for search.
ALLOWED_LITERALS = frozenset({"ё", "е", "Ё", "Е"})


def docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def cyrillic_literals(path: Path, root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = docstrings(tree)
    return [
        f"{path.relative_to(root)}:{node.lineno}: {node.value[:60]!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in skip
        and node.value not in ALLOWED_LITERALS
        and CYRILLIC.search(node.value)
    ]


def test_russian_strings_live_in_the_catalogue() -> None:
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith((".", "bot/texts/")) or "/." in relative:
            continue
        if any(relative.startswith(prefix) for prefix in ALLOWED):
            continue
        offenders += cyrillic_literals(path)
    assert offenders == []


def test_the_scan_sees_a_literal_and_skips_docstrings(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text('"""Модуль."""\n\nTEXT = "Привет"\nLETTER = "ё"\n', encoding="utf-8")
    assert cyrillic_literals(sample, tmp_path) == ["sample.py:3: 'Привет'"]


def test_every_allowed_place_exists() -> None:
    for prefix in ALLOWED:
        assert (ROOT / prefix).exists(), prefix


# --- plural forms --------------------------------------------------------------------------

ONE = {1, 21, 31, 41, 51, 61, 71, 81, 91, 101, 121}
FEW = {n for tens in range(0, 130, 10) for n in (tens + 2, tens + 3, tens + 4)} - {
    12,
    13,
    14,
    112,
    113,
    114,
}


@pytest.mark.parametrize("count", range(126))
def test_the_plural_form_of_every_number_to_125(count: int) -> None:
    expected = Form.ONE if count in ONE else Form.FEW if count in FEW else Form.MANY
    assert form(count) is expected
    new = Plural("{count} новая", "{count} новые", "{count} новых")(count)
    assert new == {Form.ONE: f"{count} новая", Form.FEW: f"{count} новые"}.get(
        expected, f"{count} новых"
    )


def test_plural_forms_read_as_russian() -> None:
    words = [plural(n, "заявка", "заявки", "заявок") for n in (1, 2, 5, 11, 21, 22, 111, 104)]
    assert words == ["заявка", "заявки", "заявок", "заявок", "заявка", "заявки", "заявок", "заявки"]
    assert form(-1) is Form.ONE


ACTOR = Actor(
    account_id=1,
    full_name="Петров Пётр Петрович",
    role=Role.DIRECTOR,
    roles=frozenset({Role.DIRECTOR}),
    organization_id=10,
)


@pytest.mark.parametrize(
    ("count", "label"),
    [
        (0, "📥 Заявки (0 новых)"),
        (1, "📥 Заявки (1 новая)"),
        (2, "📥 Заявки (2 новые)"),
        (4, "📥 Заявки (4 новые)"),
        (5, "📥 Заявки (5 новых)"),
        (11, "📥 Заявки (11 новых)"),
        (21, "📥 Заявки (21 новая)"),
        (101, "📥 Заявки (101 новая)"),
        (112, "📥 Заявки (112 новых)"),
        (123, "📥 Заявки (123 новые)"),
    ],
)
def test_the_main_menu_counts_in_plural_forms(count: int, label: str) -> None:
    assert menu.main_menu(ACTOR, count).rows[0][0].label == label


def test_a_long_comment_is_refused_in_plural_forms() -> None:
    from services.domain import Reason, ReasonCode

    def said(limit: int) -> str:
        return bot.texts.domain.refusal(Reason(ReasonCode.COMMENT_TOO_LONG, limit=limit))

    assert said(1000).endswith("не больше 1000 символов")
    assert said(21).endswith("не больше 21 символа")


# --- the messenger's name ------------------------------------------------------------------

CHAT_TEXTS: tuple[ModuleType, ...] = (
    bot.texts,
    bot.texts.applications,
    bot.texts.domain,
    bot.texts.linking,
    bot.texts.notifications,
    bot.texts.pushes,
)


def strings_of(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in strings_of(item)]
    if isinstance(value, tuple | list):
        return [text for item in value for text in strings_of(item)]
    if isinstance(value, Plural):
        return [value.one, value.few, value.many]
    return []


def catalogue() -> list[tuple[str, str]]:
    return [
        (f"{module.__name__}.{name}", text)
        for module in CHAT_TEXTS
        for name, value in vars(module).items()
        if name.isupper()
        for text in strings_of(value)
    ]


def test_texts_shown_in_a_chat_name_no_messenger_of_their_own() -> None:
    named = [name for name, text in catalogue() if "Telegram" in text or "MAX" in text]
    assert named == []
    assert any("{messenger}" in text for _, text in catalogue())


def test_texts_with_the_messenger_read_in_max() -> None:
    for name, text in catalogue():
        if "{messenger}" not in text:
            continue
        fields = {field for _, field, _, _ in string.Formatter().parse(text) if field}
        values = {field: f"<{field}>" for field in fields - {"messenger"}}
        said = say(text, "max", **values)
        assert "MAX" in said, name
        assert "{" not in said, name
        assert "Telegram" not in said, name


def test_every_sign_in_page_text_has_the_fields_it_is_given() -> None:
    # bot/oidc.py fills in the messenger and, for the refusals, the link's lifetime only.
    for title, text in bot.texts.linking.PAGE_REFUSALS.values():
        assert "Telegram" not in say(title, "max") + say(text, "max", ttl_minutes=10)


# --- the time zone in words ----------------------------------------------------------------

NOW = datetime(2026, 9, 1, 6, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "words"),
    [
        ("Asia/Yekaterinburg", "по времени Екатеринбурга, UTC+5"),
        ("Europe/Moscow", "по времени Москвы, UTC+3"),
        ("Europe/Kaliningrad", "по времени Калининграда, UTC+2"),
        ("Asia/Kamchatka", "по времени Петропавловска-Камчатского, UTC+12"),
        ("Asia/Kolkata", "по времени UTC+5:30"),
        ("America/St_Johns", "по времени UTC-2:30"),  # summer time on 1 September
        ("UTC", "по времени UTC"),
    ],
)
def test_the_zone_is_said_by_its_city_and_offset(zone: str, words: str) -> None:
    assert zone_phrase(ZoneInfo(zone), NOW) == words


def test_every_russian_zone_named_is_a_zone() -> None:
    for key in CITIES:
        assert ZoneInfo(key).key == key


def test_the_digest_says_its_time_in_words() -> None:
    settings = menu.NotificationSettings(
        muted=False,
        digest_enabled=True,
        digest_time=time(9, 0),
        zone=zone_phrase(ZoneInfo("Asia/Yekaterinburg"), NOW),
    )
    text = menu.notifications(settings, ACTOR).text
    assert "приходит в 09:00 по времени Екатеринбурга, UTC+5, если" in text
    assert "Asia/" not in text


# --- the web module's changes, said grammatically -------------------------------------------

ZONE = ZoneInfo("Asia/Yekaterinburg")
PROGRAM = (
    "Диагностика личностно профессионального развития участников кадрового резерва "
    "руководителей образовательных организаций"
)


def application(number: int, **values: object) -> ApplicationView:
    fields: dict[str, object] = {
        "status": Status.NEW,
        "applicant_id": 3,
        "applicant_name": "Войсковая Юлия Олеговна",
        "organization_id": 10,
        "organization_name": "МАОУ «СОШ № 1»",
        "program": PROGRAM,
    }
    fields.update(values)
    return ApplicationView(number=number, **fields)  # type: ignore[arg-type]


def web_event(to_status: Status | None, from_status: Status | None = Status.NEW) -> EventView:
    action = "cancel" if to_status else "comment"
    return event_view(factories.web_event(action, from_status, to_status, NOW))


def test_the_card_says_the_web_module_changed_the_status() -> None:
    card = screens.application_card(
        application(39744, status=Status.CANCELLED),
        actions=[],
        last_change=web_event(Status.CANCELLED),
        comments=0,
        zone=ZONE,
    )
    assert "Статус изменён в модуле «Организация ДПО», 01.09.2026 11:00" in card.text
    assert "Изменил(а) статус: Модуль" not in card.text


def test_the_push_says_the_web_module_changed_the_status() -> None:
    push = pushes.status_changed(
        application(39744, status=Status.CANCELLED),
        web_event(Status.CANCELLED),
        to_applicant=True,
        hide_names=False,
    )
    assert "Изменено в модуле «Организация ДПО»" in push.text.splitlines()
    assert "Кто:" not in push.text


# --- lists: the hint and rows that tell applications apart ----------------------------------


def listing(
    items: list[ApplicationView], status_filter: ListFilter, role: Role = Role.DIRECTOR
) -> Screen:
    page = Page(items=items, index=0, pages=1, total=len(items))
    return screens.application_list(page, ListIntent(status_filter=status_filter), None, role=role)


APPROVE_HINT = "одобрить или отменить её"


@pytest.mark.parametrize(
    ("role", "status_filter", "hint"),
    [
        (Role.DIRECTOR, ListFilter.NEW, APPROVE_HINT),
        (Role.DIRECTOR, ListFilter.ALL, APPROVE_HINT),
        (Role.DIRECTOR, ListFilter.APPROVED, "комментарии и историю"),
        (Role.DIRECTOR, ListFilter.CANCELLED, "комментарии и историю"),
        (Role.DIRECTOR, ListFilter.INCLUDED, "комментарии и историю"),
        (Role.STAFF, ListFilter.APPROVED, "включить её в группу или отменить"),
        (Role.STAFF, ListFilter.NEW, "сведения и отменить её"),
        (Role.STAFF, ListFilter.INCLUDED, "комментарии и историю"),
        (Role.LISTENER, ListFilter.ALL, "комментарии и историю"),
        (Role.LISTENER, ListFilter.NEW, "комментарии и историю"),
    ],
)
def test_the_list_hint_offers_only_what_the_list_allows(
    role: Role, status_filter: ListFilter, hint: str
) -> None:
    text = listing([application(39744)], status_filter, role).text
    assert hint in text
    if hint != APPROVE_HINT:
        assert APPROVE_HINT not in text


def rows(screen: Screen) -> list[str]:
    return [
        button.label
        for row in screen.rows
        for button in row
        if isinstance(button.intent, AppIntent) and button.intent.action is AppAction.OPEN
    ]


def test_rows_of_one_programme_show_the_group() -> None:
    items = [
        application(39744, group="Группа 1 (сентябрь)"),
        application(39745, group="Группа 2 (октябрь)"),
        application(39746, group="Группа 1 (сентябрь)"),
    ]
    labels = rows(listing(items, ListFilter.NEW))
    assert labels[0].startswith("№39744 · Войсковая Ю. О. · Группа 1 (сентябрь) · Диагност")
    assert labels[1].startswith("№39745 · Войсковая Ю. О. · Группа 2 (октябрь) · Диагност")
    assert all(len(label) <= bot.texts.applications.LIST_ROW_LIMIT for label in labels)


def test_rows_of_programmes_that_begin_alike_show_where_they_differ() -> None:
    items = [
        application(39744, program=PROGRAM + ": модуль 1"),
        application(39745, program=PROGRAM + ": модуль 2"),
    ]
    labels = rows(listing(items, ListFilter.NEW))
    assert labels == [
        "№39744 · Войсковая Ю. О. · …модуль 1",
        "№39745 · Войсковая Ю. О. · …модуль 2",
    ]


def test_rows_of_the_applicants_own_list_tell_apart_too() -> None:
    items = [
        application(39744, program="Цифровая образовательная среда: базовый курс"),
        application(39745, program="Цифровая образовательная среда: продвинутый курс"),
    ]
    labels = rows(listing(items, ListFilter.ALL, Role.LISTENER))
    assert labels == ["🆕 №39744 · …среда: базовый курс", "🆕 №39745 · …среда: продвинутый курс"]


def test_rows_of_different_programmes_and_single_rows_stay_as_they_were() -> None:
    items = [application(39744, program="Экспертиза"), application(39745, program="Цифра")]
    assert rows(listing(items, ListFilter.NEW)) == [
        "№39744 · Войсковая Ю. О. · Экспертиза",
        "№39745 · Войсковая Ю. О. · Цифра",
    ]
    [single] = rows(listing([application(39744, group="Группа 1")], ListFilter.NEW))
    assert single.startswith("№39744 · Войсковая Ю. О. · Диагностика личностно")
