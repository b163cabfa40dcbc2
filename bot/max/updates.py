"""MAX's updates as the conversation's events: translation only.

| MAX update | event |
|---|---|
| `message_created` in a dialog, text `/name args` | Command |
| `message_created` in a dialog, other text | Text |
| `message_created` in a dialog, no text (a photo, a sticker…) | Other |
| `message_callback` | Press (the callback button's payload, under the message `mid`) |
| `bot_started` (`payload`: the `?start=` of a link) | Command `start` with the payload |
| `bot_stopped`, `dialog_removed` | Reachable(False): pushes held until the user is back |

The user is `message.sender`, `callback.user` or the event's `user`; the dialog's `chat_id` is
not the user id (MAX keeps them apart). Groups and channels are not the bot's, nor other event
types: they are taken and left alone.

MAX updates carry no update id. An event's identity (docs/MAX.md) is recorded as handled under
the messenger "max" (storage/updates.py) as the sha256 hex of its identity key: 64 characters
whatever a callback id's length.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from bot.conversation.turn import Command, Event, Incoming, Other, Peer, Press, Reachable, Text

MESSENGER = "max"
JsonDict = dict[str, Any]

# The update types the bot asks for (polling `types`, the subscription's `update_types`).
UPDATE_TYPES = [
    "message_created",
    "message_callback",
    "bot_started",
    "bot_stopped",
    "dialog_removed",
]


@dataclass(frozen=True)
class Translated:
    """An update as the runner takes it, and where its effects go."""

    incoming: Incoming
    chat_id: int
    callback_id: str | None = None  # a press: answered through POST /answers
    origin: str | None = None  # the pressed message's mid


def identity_key(update: JsonDict) -> str | None:
    """What makes one event itself (docs/MAX.md, «Identity of an event»); None for an update
    without one (a malformed body: any part of it may be of the wrong type)."""
    if not isinstance(update, dict):
        return None
    kind = update.get("update_type")
    if kind == "message_created":
        mid = _get(update, "message", "body", "mid")
        return f"m:{mid}" if mid else None
    if kind == "message_callback":
        callback_id = _get(update, "callback", "callback_id")
        if not callback_id:
            return None
        timestamp = _get(update, "callback", "timestamp")
        return f"c:{callback_id}:{timestamp if timestamp is not None else update.get('timestamp')}"
    user_id = _get(update, "user", "user_id") or update.get("user_id")
    return f"e:{kind}:{update.get('chat_id')}:{user_id}:{update.get('timestamp')}"


def update_identity(update: JsonDict) -> str | None:
    """The event's identity as the key it is recorded under (the sha256 hex of its identity
    key); None for an update without one. Never raises, whatever the update holds."""
    try:
        key = identity_key(update)
    except Exception:  # a value whose str() fails: no identity, then
        return None
    if key is None:
        return None
    return hashlib.sha256(key.encode()).hexdigest()


def translate(update: JsonDict, bot_id: int) -> Translated | None:
    """The update as an Incoming, or None if it is not the bot's to handle."""
    kind = update.get("update_type")
    identity = update_identity(update)
    if kind == "message_created":
        message = update.get("message") or {}
        recipient = message.get("recipient") or {}
        sender = message.get("sender") or {}
        if (
            recipient.get("chat_type") != "dialog"
            or sender.get("is_bot")
            or "user_id" not in sender
        ):
            return None
        chat_id = int(recipient["chat_id"])
        who = peer(sender, chat_id, bot_id)
        return Translated(
            Incoming(who, message_event(message.get("body") or {}), identity), chat_id
        )
    if kind == "message_callback":
        callback = update.get("callback") or {}
        message = update.get("message")
        user = callback.get("user") or {}
        if not isinstance(message, dict) or "user_id" not in user:
            return None  # the message is gone: nothing to show the press on
        recipient = message.get("recipient") or {}
        if recipient.get("chat_type") != "dialog":
            return None
        chat_id = int(recipient["chat_id"])
        mid = _get(message, "body", "mid")
        press = Press(str(callback.get("payload") or ""), str(mid) if mid else None)
        return Translated(
            Incoming(peer(user, chat_id, bot_id), press, identity),
            chat_id,
            callback_id=str(callback["callback_id"]),
            origin=str(mid) if mid else None,
        )
    if kind in ("bot_started", "bot_stopped", "dialog_removed"):
        user = update.get("user") or {}
        if "user_id" not in user or update.get("chat_id") is None:
            return None
        chat_id = int(update["chat_id"])
        started: Event = Command("start", update.get("payload") or None)
        event = started if kind == "bot_started" else Reachable(False)
        return Translated(Incoming(peer(user, chat_id, bot_id), event, identity), chat_id)
    return None


def peer(user: JsonDict, chat_id: int, bot_id: int) -> Peer:
    name = " ".join(str(part) for part in (user.get("first_name"), user.get("last_name")) if part)
    return Peer(
        messenger=MESSENGER,
        user_id=int(user["user_id"]),
        chat_id=chat_id,
        name=name or str(user.get("name") or ""),
        username=user.get("username") or None,
        bot_id=bot_id,
    )


def message_event(body: JsonDict) -> Event:
    text = body.get("text")
    if not text:
        attachments = body.get("attachments") or []
        kind = attachments[0].get("type", "other") if attachments else "other"
        return Other(str(kind))
    text = str(text)
    if text.startswith("/"):
        head, _, args = text.partition(" ")
        return Command(head[1:].split("@", 1)[0].lower(), args.strip() or None)
    return Text(text)


def _get(data: JsonDict, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)  # type: ignore[assignment]
    return data
