"""The Telegram front end (aiogram), the only package of bot/ that imports it: the bot and its
Dispatcher, its screens drawn as Telegram messages, the effects carried out through the Bot API,
updates received by webhook or long polling, the outbox's Telegram sender.

Importing this package imports nothing of aiogram (bot/__init__.py imports lazy_types from it
before aiogram is loaded); its modules do."""
