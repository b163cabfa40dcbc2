"""The MAX front end: MAX's updates translated into the conversation layer, its screens drawn
as MAX messages, its effects and pushes carried out through MAX's Bot API (docs/MAX.md).

Beside the Telegram one and as thin: `updates` translates, `render` draws, `effects` carries
out a reply, `sender` delivers the outbox's MAX rows, `polling` and `webhook` receive updates
exactly once, `client` is the HTTP client (maxapi's session), `front` wires them for the
process (bot/app.py). Nothing here imports aiogram.
"""
