"""Telegram's updates in, through the conversation layer, effects out: translation only.

A private chat's message becomes a text, a command or another kind of message; a callback
query a press (its callback_data is an intent's payload); `my_chat_member` whether the bot may
write to the chat. The runner (bot/conversation/runner.py) handles each exactly once and hands
its effects to a TelegramExecutor. Groups and channels are not the bot's: their updates are
taken and left alone.
"""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.filters import KICKED, MEMBER, ChatMemberUpdatedFilter
from aiogram.types import CallbackQuery, ChatMemberUpdated, Message, Update, User

from bot.conversation.receipts import Receipt
from bot.conversation.runner import Runner
from bot.conversation.turn import Command, Event, Incoming, Other, Peer, Press, Reachable, Text
from bot.telegram.effects import TelegramExecutor

MESSENGER = "telegram"


def peer(bot: Bot, user: User, chat_id: int) -> Peer:
    return Peer(
        messenger=MESSENGER,
        user_id=user.id,
        chat_id=chat_id,
        name=user.full_name,
        username=user.username,
        bot_id=bot.id,
    )


def message_event(message: Message) -> Event:
    text = message.text
    if text is None:
        return Other(str(message.content_type))
    if text.startswith("/"):
        head, _, args = text.partition(" ")
        name = head[1:].split("@", 1)[0].lower()
        return Command(name, args.strip() or None)
    return Text(text)


async def run(
    runner: Runner,
    bot: Bot,
    update: Update,
    who: Peer,
    event: Event,
    executor: TelegramExecutor,
    receipt: Receipt | None,
) -> None:
    result = await runner.run(Incoming(who, event, update.update_id), executor)
    if receipt is not None:
        receipt.outcome = result.outcome


async def on_message(
    message: Message,
    bot: Bot,
    runner: Runner,
    event_update: Update,
    receipt: Receipt | None = None,
) -> None:
    if message.from_user is None:
        return
    executor = TelegramExecutor(bot, message.chat.id)
    who = peer(bot, message.from_user, message.chat.id)
    await run(runner, bot, event_update, who, message_event(message), executor, receipt)


async def on_press(
    callback: CallbackQuery,
    bot: Bot,
    runner: Runner,
    event_update: Update,
    receipt: Receipt | None = None,
) -> None:
    origin = callback.message.message_id if callback.message is not None else None
    chat_id = callback.message.chat.id if callback.message is not None else callback.from_user.id
    executor = TelegramExecutor(bot, chat_id, callback_id=callback.id, origin=origin)
    event = Press(callback.data or "", str(origin) if origin is not None else None)
    who = peer(bot, callback.from_user, chat_id)
    await run(runner, bot, event_update, who, event, executor, receipt)


async def on_member(
    change: ChatMemberUpdated,
    bot: Bot,
    runner: Runner,
    event_update: Update,
    receipt: Receipt | None = None,
) -> None:
    """The user blocked the bot (kicked) or let it write again (member)."""
    reachable = change.new_chat_member.status != "kicked"
    executor = TelegramExecutor(bot, change.chat.id)
    who = peer(bot, change.from_user, change.chat.id)
    await run(runner, bot, event_update, who, Reachable(reachable), executor, receipt)


def build_router() -> Router:
    """The one router of the Telegram front end, built anew for each Dispatcher."""
    router = Router(name="telegram")
    router.message.register(on_message, F.chat.type == ChatType.PRIVATE)
    router.callback_query.register(on_press)
    router.my_chat_member.register(on_member, ChatMemberUpdatedFilter(KICKED | MEMBER))
    return router
