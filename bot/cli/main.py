"""Command line: `python -m bot [COMMAND]`: run (the default), dispatcher, migrate, link-token ID,
unlink ID, import FILE, demo."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from bot.links import LinkBuilder
from bot.settings import Settings, SettingsError, load_settings
from bot.texts import cli
from bot.texts.messengers import say
from bot.texts.zones import zone_phrase

if TYPE_CHECKING:
    from bot.max.client import Me

EXIT_FAILURE = 1
MESSENGER = "telegram"  # the messenger the command line mints links for (t.me) and names
EXIT_SETTINGS = 2
MESSENGERS = ("telegram", "max")


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    quiet_loggers()


# Loggers kept quiet whatever LOG_LEVEL says: aiogram logs every handled update (ids only, but
# noisy); SQLAlchemy at INFO/DEBUG logs statements, parameters and rows, and aiosqlite at DEBUG
# every statement with its parameters — personal data; Alembic narrates every migration step.
QUIET_LOGGERS = ("aiogram.event", "sqlalchemy", "aiosqlite", "alembic")


def quiet_loggers() -> None:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="python -m bot", description=say(cli.DESCRIPTION, MESSENGER)
    )
    commands = root.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("run", help=cli.HELP_RUN)
    commands.add_parser(
        "dispatcher",
        help=cli.HELP_DISPATCHER,
    )
    commands.add_parser("migrate", help=cli.HELP_MIGRATE)
    link_token = commands.add_parser(
        "link-token",
        help=say(cli.HELP_LINK_TOKEN, MESSENGER),
    )
    link_token.add_argument("account_id", type=int, metavar="ACCOUNT_ID", help=cli.HELP_ACCOUNT_ID)
    unlink = commands.add_parser(
        "unlink",
        help=cli.HELP_UNLINK,
    )
    unlink.add_argument("account_id", type=int, metavar="ACCOUNT_ID", help=cli.HELP_ACCOUNT_ID)
    unlink.add_argument(
        "--messenger", choices=MESSENGERS, default=None, help=cli.HELP_UNLINK_MESSENGER
    )
    load = commands.add_parser(
        "import",
        help=cli.HELP_IMPORT,
        description=cli.DESCRIPTION_IMPORT,
    )
    load.add_argument("file", metavar="FILE", help=cli.HELP_FILE)
    load.add_argument(
        "--no-notify",
        action="store_true",
        help=cli.HELP_NO_NOTIFY,
    )
    commands.add_parser(
        "demo",
        help=cli.HELP_DEMO,
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
    print(cli.MIGRATED)


async def bot_links(settings: Settings) -> dict[str, LinkBuilder] | None:
    """How a link token becomes a link in every messenger served, by messenger (Telegram's
    `t.me` first, then MAX's `max.ru`: MAX_BOT_USERNAME, or unset the name MAX's `GET /me`
    answers); None, said on stderr, if a messenger's API cannot be reached to learn the bot's
    name."""
    from bot.links import deep_links

    username: str | None = None
    if settings.BOT_TOKEN is not None:
        from bot.telegram.bot import BotApiUnreachable, fetch_username

        try:
            username = await fetch_username(settings) or ""
        except BotApiUnreachable:
            print(say(cli.BOT_API_UNREACHABLE, "telegram"), file=sys.stderr)
            return None
    max_name: str | None = None
    if settings.MAX_BOT_TOKEN is not None and not settings.MAX_BOT_USERNAME:
        me = await max_me(settings)
        if me is None:
            return None
        max_name = me.username
    return deep_links(settings, username, max_name)


async def max_me(settings: Settings) -> Me | None:
    """What MAX's `GET /me` says of the MAX bot; None, said on stderr, if it cannot be asked."""
    from bot.max.client import MaxError
    from bot.max.front import build_client, fetch_me

    client = build_client(settings)
    try:
        return await fetch_me(client)
    except MaxError:
        print(say(cli.BOT_API_UNREACHABLE, "max"), file=sys.stderr)
        return None
    finally:
        await client.close()


async def bot_ids(settings: Settings) -> dict[str, int] | None:
    """The bots' ids by messenger, which key their conversations in Redis: Telegram's from its
    token, MAX's from `GET /me`; None, said on stderr, if MAX cannot be asked."""
    ids: dict[str, int] = {}
    if settings.telegram_bot_id is not None:
        ids["telegram"] = settings.telegram_bot_id
    if settings.MAX_BOT_TOKEN is not None:
        me = await max_me(settings)
        if me is None:
            return None
        ids["max"] = me.user_id
    return ids


async def _link_token(settings: Settings, account_id: int) -> int:
    """Mint a portal-first token; print its link in every messenger served (Telegram's t.me
    first, then MAX's max.ru, one a line) and its expiry in local time."""
    from services.clock import SystemClock
    from services.linking import UnknownAccountError, mint_portal_token
    from storage.db import create_engine, create_session_factory
    from storage.migrate import upgrade
    from storage.repositories import Repositories

    links = await bot_links(settings)
    if links is None:
        return EXIT_FAILURE
    engine = create_engine(settings.DATABASE_URL)
    try:
        await upgrade(engine)
        async with create_session_factory(engine)() as session:
            try:
                minted = await mint_portal_token(
                    Repositories(session),
                    account_id,
                    ttl=timedelta(seconds=settings.LINK_TOKEN_TTL),
                    clock=SystemClock(),
                )
            except UnknownAccountError as error:
                print(cli.ACCOUNT_NOT_FOUND.format(account_id=error.account_id), file=sys.stderr)
                return EXIT_FAILURE
            await session.commit()
    finally:
        await engine.dispose()
    expires = minted.expires_at.astimezone(settings.zone)
    for build in links.values():
        print(build(minted.token))
    zone = zone_phrase(settings.zone, minted.expires_at)
    print(cli.LINK_EXPIRES.format(until=f"{expires:%d.%m.%Y %H:%M}", zone=zone))
    return 0


async def _unlink(settings: Settings, account_id: int, messenger: str | None) -> int:
    """An operator's revocation of an account's bindings (of one messenger, or all); each chat
    is told through the outbox, whoever waits for permission to move the account learns a new
    link is needed. The removed chats' conversation state goes too, as with the web module's
    revocation: in the database with the binding, in Redis (REDIS_URL) through the same eraser,
    before the commit (if Redis fails, nothing is removed)."""
    from bot.conversation.runner import Runner
    from bot.conversation.stores import build_runner
    from bot.process.app import conversation_eraser
    from services.clock import SystemClock
    from services.linking import unlink_account
    from storage.db import create_engine, create_session_factory
    from storage.migrate import upgrade
    from storage.repositories import Repositories

    ids = await bot_ids(settings) if settings.REDIS_URL else {}
    if ids is None:
        return EXIT_FAILURE
    engine = create_engine(settings.DATABASE_URL)
    runner: Runner | None = None
    try:
        await upgrade(engine)
        session_factory = create_session_factory(engine)
        runner = build_runner(settings, session_factory)
        forget = conversation_eraser(runner, ids.get("telegram", 0), ids)
        async with session_factory() as session:
            repo = Repositories(session)
            if await repo.accounts.get(account_id) is None:
                print(cli.ACCOUNT_NOT_FOUND.format(account_id=account_id), file=sys.stderr)
                return EXIT_FAILURE
            removed = await unlink_account(
                repo, account_id, clock=SystemClock(), messenger=messenger
            )
            if forget is not None:
                for binding in removed:
                    await forget(binding.messenger, binding.user_id, binding.chat_id)
            await session.commit()
    finally:
        if runner is not None:
            await runner.close()
        await engine.dispose()
    if not removed and messenger is not None:
        print(say(cli.NOT_LINKED, messenger, account_id=account_id))
    elif not removed:
        print(cli.NOT_LINKED_ANYWHERE.format(account_id=account_id))
    for binding in removed:
        print(say(cli.UNLINKED, binding.messenger, account_id=account_id))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    command = args.command or "run"
    try:
        settings = load_settings(
            require_bot_token=command in ("run", "dispatcher", "link-token", "demo")
        )
        configure_logging(settings.LOG_LEVEL)
        if command == "migrate":
            asyncio.run(_migrate(settings))
        elif command == "link-token":
            return asyncio.run(_link_token(settings, args.account_id))
        elif command == "unlink":
            return asyncio.run(_unlink(settings, args.account_id, args.messenger))
        elif command == "import":
            from bot.cli.importer import run_import

            return asyncio.run(run_import(settings, args.file, notify=not args.no_notify))
        elif command == "demo":
            from bot.cli.demo import run_demo

            return asyncio.run(run_demo(settings))
        elif command == "dispatcher":
            from bot.process.dispatcher import run_dispatcher

            asyncio.run(run_dispatcher(settings))
        else:
            from bot.process.app import run

            asyncio.run(run(settings))
    except SettingsError as error:
        print("\n".join(error.lines), file=sys.stderr)
        return EXIT_SETTINGS
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
