"""The Telegram front end: settings, app factory, middlewares, keyboards, texts, web server."""

from bot.lazy_types import defer_aiogram_types

# Before anything imports aiogram: its ~440 types are built on first use, not all at import
# (bot/lazy_types.py; ~100 MiB less memory).
defer_aiogram_types()
