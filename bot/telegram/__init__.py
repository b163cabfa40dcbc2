"""The Telegram front end (aiogram): the bot, its screens drawn as Telegram messages, the
effects carried out through the Bot API, updates received by webhook or long polling."""
