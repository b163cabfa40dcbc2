"""«🔔 Уведомления»: mute and unmute pushes, opt out of the daily digest; and the chat's
blocked flag kept in step with Telegram's `my_chat_member` updates."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import KICKED, MEMBER, ChatMemberUpdatedFilter
from aiogram.types import CallbackQuery, ChatMemberUpdated, InlineKeyboardMarkup

from bot import texts
from bot.callbacks import MenuAction, MenuCb, NotifyAction, NotifyCb
from bot.filters import ActiveRole
from bot.keyboards import button
from bot.render import show
from bot.settings import Settings
from bot.texts import notifications as notification_texts
from services.clock import Clock
from services.domain import Actor, Role
from services.outbox import chat_blocked, chat_unblocked
from storage.models import TelegramLink
from storage.repositories import Repositories

ANSWERS = {
    NotifyAction.MUTE: notification_texts.MUTED,
    NotifyAction.UNMUTE: notification_texts.UNMUTED,
    NotifyAction.DIGEST_OFF: notification_texts.DIGEST_DISABLED,
    NotifyAction.DIGEST_ON: notification_texts.DIGEST_ENABLED,
}


def settings_text(link: TelegramLink, actor: Actor, settings: Settings) -> str:
    lines = [notification_texts.TITLE, ""]
    lines.append(notification_texts.PUSHES_OFF if link.muted else notification_texts.PUSHES_ON)
    if Role.DIRECTOR in actor.roles:
        lines.append("")
        if link.digest_enabled:
            time = settings.DIGEST_TIME.strftime("%H:%M")
            lines.append(notification_texts.DIGEST_ON.format(time=time, zone=settings.TIMEZONE))
            if link.muted:
                lines.append(notification_texts.DIGEST_MUTED)
        else:
            lines.append(notification_texts.DIGEST_OFF)
    return "\n".join(lines)


def settings_keyboard(link: TelegramLink, actor: Actor) -> InlineKeyboardMarkup:
    """Each button sets the opposite of the current state; the digest only for directors."""
    rows = [
        [
            button(notification_texts.BUTTON_UNMUTE, NotifyCb(action=NotifyAction.UNMUTE))
            if link.muted
            else button(notification_texts.BUTTON_MUTE, NotifyCb(action=NotifyAction.MUTE))
        ]
    ]
    if Role.DIRECTOR in actor.roles:
        rows.append(
            [
                button(
                    notification_texts.BUTTON_DIGEST_OFF, NotifyCb(action=NotifyAction.DIGEST_OFF)
                )
                if link.digest_enabled
                else button(
                    notification_texts.BUTTON_DIGEST_ON, NotifyCb(action=NotifyAction.DIGEST_ON)
                )
            ]
        )
    rows.append([button(texts.MENU_BACK, MenuCb(action=MenuAction.HOME))])
    return InlineKeyboardMarkup(inline_keyboard=rows)


async def open_settings(
    callback: CallbackQuery, link: TelegramLink, actor: Actor, settings: Settings
) -> None:
    await callback.answer()
    await show(callback, settings_text(link, actor, settings), settings_keyboard(link, actor))


async def change_setting(
    callback: CallbackQuery,
    callback_data: NotifyCb,
    link: TelegramLink,
    actor: Actor,
    settings: Settings,
) -> None:
    action = callback_data.action
    if action in (NotifyAction.MUTE, NotifyAction.UNMUTE):
        link.muted = action is NotifyAction.MUTE
    elif Role.DIRECTOR in actor.roles:
        link.digest_enabled = action is NotifyAction.DIGEST_ON
    else:  # a forged button: the digest is for directors only
        await callback.answer(notification_texts.DIGEST_FOR_DIRECTORS, show_alert=True)
        return
    await callback.answer(ANSWERS[action])
    await show(callback, settings_text(link, actor, settings), settings_keyboard(link, actor))


async def bot_blocked(
    event: ChatMemberUpdated, repo: Repositories, clock: Clock, link: TelegramLink | None
) -> None:
    if link is not None:
        await chat_blocked(repo.session, link.chat_id, clock.now())


async def bot_unblocked(
    event: ChatMemberUpdated, repo: Repositories, clock: Clock, link: TelegramLink | None
) -> None:
    if link is not None:
        await chat_unblocked(repo.session, link.chat_id, clock.now())


def build_router() -> Router:
    router = Router(name="notifications")
    router.callback_query.filter(ActiveRole(*Role))
    router.callback_query.register(
        open_settings, MenuCb.filter(F.action == MenuAction.NOTIFICATIONS)
    )
    router.callback_query.register(change_setting, NotifyCb.filter())
    # Any linked user, whatever the role or consent: only the chat's reachability changes.
    router.my_chat_member.register(bot_blocked, ChatMemberUpdatedFilter(KICKED))
    router.my_chat_member.register(bot_unblocked, ChatMemberUpdatedFilter(MEMBER))
    return router
