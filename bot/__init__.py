"""The messenger bot of «Организация ДПО»: the messenger-neutral conversation (conversation/,
screens/, texts/), the Telegram front end (telegram/), the web server (web/), the command line
(cli/) and the process wiring (process/)."""

from bot.telegram.lazy_types import defer_aiogram_types_on_import

# Before anything imports aiogram: its ~440 types are built on first use, not all at import
# (bot/telegram/lazy_types.py; ~100 MiB less memory). aiogram itself is not imported here.
defer_aiogram_types_on_import()
