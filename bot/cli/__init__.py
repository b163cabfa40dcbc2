"""The command line (`python -m bot COMMAND`): its parser and commands (main.py), the import of
an export (importer.py), the demo set (demo.py). Messenger-neutral: what needs the Telegram Bot
API (the bot's username for a link) it asks bot/telegram for."""
