"""Command line: `python -m bot [run|migrate|import FILE|demo]`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from bot.settings import Settings, SettingsError, load_settings

EXIT_SETTINGS = 2


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # aiogram logs every handled update with its id only; keep that, but nothing richer.
    logging.getLogger("aiogram.event").setLevel(logging.WARNING)
    # Alembic narrates every migration step at INFO; the commands say what matters themselves.
    logging.getLogger("alembic").setLevel(logging.WARNING)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m bot", description="Бот модуля «Организация ДПО» для Telegram"
    )
    commands = root.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("run", help="запустить бота, веб-сервер и рассылку (по умолчанию)")
    commands.add_parser("migrate", help="применить миграции базы данных")
    load = commands.add_parser(
        "import",
        help="загрузить ОО, учётные записи и заявки из выгрузки JSON Lines или CSV",
        description="Формат файла — в docs/IMPORT.md. Ошибочные строки перечисляются с номерами; "
        "код выхода 1, если такие были.",
    )
    load.add_argument("file", metavar="FILE", help="файл .jsonl или .csv")
    load.add_argument(
        "--no-notify",
        action="store_true",
        help="не уведомлять руководителей о новых заявках (для первой загрузки)",
    )
    commands.add_parser(
        "demo",
        help="загрузить демонстрационные данные и напечатать ссылки для входа руководителя "
        "и заявителя",
    )
    return root


async def _migrate(settings: Settings) -> None:
    from storage.db import create_engine
    from storage.migrate import upgrade

    engine = create_engine(settings.DATABASE_URL)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    print("Миграции применены.")


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    command = args.command or "run"
    try:
        settings = load_settings(require_bot_token=command in ("run", "demo"))
        configure_logging(settings.LOG_LEVEL)
        if command == "migrate":
            asyncio.run(_migrate(settings))
        elif command == "import":
            from bot.importer import run_import

            return asyncio.run(run_import(settings, args.file, notify=not args.no_notify))
        elif command == "demo":
            from bot.demo import run_demo

            return asyncio.run(run_demo(settings))
        else:
            from bot.app import run

            asyncio.run(run(settings))
    except SettingsError as error:
        print("\n".join(error.lines), file=sys.stderr)
        return EXIT_SETTINGS
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
