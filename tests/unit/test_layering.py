"""The layout keeps its promise: only the Telegram front end (bot/telegram) and its handlers
(handlers/) import aiogram; the messenger-neutral layers load without it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.processes import fresh_python

ROOT = Path(__file__).resolve().parents[2]
CHECKED = ("bot", "services", "storage")
ALLOWED = (ROOT / "bot" / "telegram",)  # and handlers/, not checked at all
NEUTRAL = (
    "bot.conversation",
    "bot.screens",
    "bot.texts",
    "services",
    "storage",
    "bot.web",
    "bot.max",  # the MAX front end: no aiogram either
)


def aiogram_imports(source: str) -> list[tuple[int, str]]:
    """(line, module) of every import of aiogram in `source`: `import`, `from … import`
    (inside `if TYPE_CHECKING:` too) and `importlib.import_module`/`__import__` of a literal."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if (
                called in ("import_module", "__import__")
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
            ):
                names = [first.value]
        found += [(node.lineno, name) for name in names if name.split(".")[0] == "aiogram"]
    return found


def checked_files() -> list[Path]:
    return sorted(
        path
        for folder in CHECKED
        for path in (ROOT / folder).rglob("*.py")
        if not any(path.is_relative_to(allowed) for allowed in ALLOWED)
    )


@pytest.mark.parametrize(
    "source",
    [
        "from aiogram import Bot",
        "import aiogram.types as t",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from aiogram.types import User",
        "def f():\n    from aiogram.exceptions import TelegramAPIError",
        "import importlib\nimportlib.import_module('aiogram.methods')",
    ],
)
def test_the_check_sees_each_way_of_importing_aiogram(source: str) -> None:
    assert len(aiogram_imports(source)) == 1


def test_the_check_leaves_other_imports_and_mentions_alone() -> None:
    source = '"""aiogram"""\nimport aiogramish\nfrom bot.telegram.bot import Bot\nx = "aiogram"\n'
    assert aiogram_imports(source) == []


def test_only_the_telegram_package_and_handlers_import_aiogram() -> None:
    files = checked_files()
    assert len(files) > 50  # the walk found the tree
    assert ROOT / "bot" / "telegram" / "bot.py" not in files
    offenders = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in files
        for line, module in aiogram_imports(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_the_neutral_layers_load_without_aiogram() -> None:
    """Every module of the neutral layers (and of the web server) imported in a fresh
    interpreter, `import bot`'s deferral of aiogram's types included: aiogram stays unloaded."""
    code = (
        "import importlib, pkgutil, sys\n"
        f"for name in {NEUTRAL!r}:\n"
        "    package = importlib.import_module(name)\n"
        "    for info in pkgutil.walk_packages(package.__path__, name + '.'):\n"
        "        if not info.name.startswith('storage.migrations'):\n"
        "            importlib.import_module(info.name)\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'aiogram')\n"
        "print(len([m for m in sys.modules if m.startswith(('bot.', 'services.', 'storage.'))]))\n"
        "print(loaded[:5])\n"
    )
    count, loaded = fresh_python(code).splitlines()
    assert int(count) > 40
    assert loaded == "[]"


def test_the_telegram_front_end_still_loads_aiogram_lazily() -> None:
    """The counter-check of the one above: the same interpreter set-up does load aiogram when
    the Telegram front end is imported, with its types still unbuilt (bot/telegram/lazy_types)."""
    code = (
        "import bot.telegram.bot, sys, aiogram.types as t\n"
        "built = [n for n in t.__all__ if getattr(getattr(t, n), '__pydantic_complete__', 0)]\n"
        "print('aiogram' in sys.modules, len(built), len(t.__all__))\n"
    )
    loaded, built, types = fresh_python(code).split()
    assert loaded == "True"
    assert int(types) > 400
    assert int(built) < 5  # the bot's commands (BotCommand), built at import; not the ~440
