"""Linking in the chat: `/start <token>` (portal first), confirming a switch of accounts, the
bound owner's answer to a request to move their account to another Telegram user, and
`/logout` with confirmation. These work before the consent too: a person may switch accounts,
keep their account or withdraw without accepting it."""

from __future__ import annotations

import logging

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bot import keyboards
from bot.callbacks import LinkAction, LinkCb
from bot.commands import set_chat_commands
from bot.render import show
from bot.screens import local_time
from bot.settings import Settings
from bot.texts import html
from bot.texts import linking as texts
from bot.texts.linking import CONSENT_VERSION
from handlers.applications import APP_LINK
from handlers.menu import render_menu
from services.clock import Clock
from services.linking import (
    Linked,
    LinkRefused,
    MoveRequested,
    Refusal,
    SwitchNeeded,
    allow_move,
    cancel_switch,
    confirm_switch,
    deny_move,
    has_consent,
    redeem_portal_token,
    unlink_account,
)
from storage.models import TelegramLink
from storage.repositories import Repositories

log = logging.getLogger(__name__)


def refusal_text(reason: Refusal, settings: Settings) -> str:
    new_link = texts.NEW_LINK_PORTAL
    if settings.bot_first_sign_in:
        new_link += texts.NEW_LINK_BOT_FIRST
    return texts.REFUSALS[reason].format(
        new_link=new_link, ttl_minutes=settings.LINK_TOKEN_TTL // 60
    )


def signed_in_text(linked: Linked) -> str:
    template = texts.ALREADY_SIGNED_IN if linked.already else texts.SIGNED_IN
    return template.format(name=html(linked.actor.full_name), role=linked.actor.role.label)


async def announce_link(bot: Bot, linked: Linked, repo: Repositories) -> None:
    """Tell the chat who it is now, then show its first screen."""
    await bot.send_message(linked.link.chat_id, signed_in_text(linked))
    await first_screen(bot, linked, repo)


async def first_screen(bot: Bot, linked: Linked, repo: Repositories) -> None:
    """The consent until it is accepted, the main menu after; the commands follow."""
    chat_id = linked.link.chat_id
    if has_consent(linked.link, CONSENT_VERSION):
        text, markup = await render_menu(repo, linked.actor)
        await bot.send_message(chat_id, text, reply_markup=markup)
        await set_chat_commands(bot, chat_id, linked.actor.role)
    else:
        await bot.send_message(chat_id, texts.CONSENT_TEXT, reply_markup=keyboards.consent())
        await set_chat_commands(bot, chat_id, None)


def log_linked(linked: Linked, how: str) -> None:
    if not linked.already:
        log.info(
            "account %s linked to Telegram user %s (%s)",
            linked.link.account_id,
            linked.link.telegram_user_id,
            how,
        )


async def redeem(
    message: Message,
    command: CommandObject,
    bot: Bot,
    repo: Repositories,
    settings: Settings,
    clock: Clock,
) -> None:
    """`/start <token>`: the payload of a t.me link from the web module."""
    assert message.from_user is not None
    outcome = await redeem_portal_token(
        repo,
        command.args or "",
        telegram_user_id=message.from_user.id,
        chat_id=message.chat.id,
        telegram_username=message.from_user.username,
        clock=clock,
    )
    if isinstance(outcome, LinkRefused):
        log.info(
            "link token refused for Telegram user %s: %s",
            message.from_user.id,
            outcome.reason.value,
        )
        await message.answer(refusal_text(outcome.reason, settings))
    elif isinstance(outcome, SwitchNeeded):
        text = texts.SWITCH_QUESTION.format(
            current=html(outcome.current_name), target=html(outcome.target_name)
        )
        await message.answer(text, reply_markup=keyboards.switch_account(outcome.token_id))
    elif isinstance(outcome, MoveRequested):
        log.info("Telegram user %s waits for a bound owner's permission", message.from_user.id)
        until = local_time(outcome.expires_at, settings.zone)
        await message.answer(texts.MOVE_REQUESTED.format(until=until))
    else:
        log_linked(outcome, "portal first")
        await announce_link(bot, outcome, repo)


async def switch(
    callback: CallbackQuery,
    callback_data: LinkCb,
    bot: Bot,
    repo: Repositories,
    settings: Settings,
    clock: Clock,
) -> None:
    """«Да, сменить учётную запись»."""
    await callback.answer()
    chat_id = callback.message.chat.id if callback.message is not None else callback.from_user.id
    outcome = await confirm_switch(
        repo,
        callback_data.token,
        telegram_user_id=callback.from_user.id,
        chat_id=chat_id,
        clock=clock,
    )
    if isinstance(outcome, LinkRefused):
        text = (
            texts.SWITCH_STALE
            if outcome.reason is Refusal.UNKNOWN
            else refusal_text(outcome.reason, settings)
        )
        await show(callback, text)
        return
    log_linked(outcome, "switched accounts")
    await show(callback, signed_in_text(outcome))
    await first_screen(bot, outcome, repo)


async def keep(
    callback: CallbackQuery,
    callback_data: LinkCb,
    repo: Repositories,
    link: TelegramLink | None,
) -> None:
    """«Отмена» of a switch: the current account stays."""
    await callback.answer()
    await cancel_switch(repo, callback_data.token, telegram_user_id=callback.from_user.id)
    if link is None:
        await show(callback, texts.SWITCH_STALE)
        return
    await show(
        callback,
        texts.SWITCH_KEPT.format(name=html(link.account.full_name)),
        keyboards.back_to_menu(),
    )


async def answer_move(
    callback: CallbackQuery,
    callback_data: LinkCb,
    bot: Bot,
    repo: Repositories,
    settings: Settings,
    clock: Clock,
    state: FSMContext,
) -> None:
    """«Разрешить» / «Запретить» under «Разрешить привязку к другому Telegram-аккаунту?».

    Only the Telegram user the account is bound to decides, whatever the button says.
    """
    await callback.answer()
    decide = allow_move if callback_data.action is LinkAction.ALLOW_MOVE else deny_move
    outcome = await decide(
        repo, callback_data.token, owner_telegram_user_id=callback.from_user.id, clock=clock
    )
    if isinstance(outcome, LinkRefused):
        if outcome.reason is Refusal.EXPIRED:
            text = texts.MOVE_EXPIRED_OWNER
        elif outcome.reason is Refusal.NO_ROLES:
            text = refusal_text(outcome.reason, settings)
        else:
            text = texts.MOVE_STALE
        await show(callback, text)
        return
    if outcome.linked is None:
        await show(callback, texts.MOVE_DENIED_OWNER, keyboards.back_to_menu())
        return
    log_linked(outcome.linked, "moved with the bound owner's permission")
    await state.clear()  # this chat is no longer bound: forget its state, as /logout does
    account = html(texts.telegram_account(outcome.requester))
    await show(callback, texts.MOVE_ALLOWED_OWNER.format(account=account))
    chat_id = callback.message.chat.id if callback.message is not None else callback.from_user.id
    await set_chat_commands(bot, chat_id, None)


async def logout_command(message: Message, link: TelegramLink | None) -> None:
    if link is None:
        await message.answer(texts.NOT_LINKED)
        return
    await message.answer(
        texts.LOGOUT_QUESTION.format(name=html(link.account.full_name)),
        reply_markup=keyboards.logout(),
    )


async def logout_confirmed(
    callback: CallbackQuery,
    bot: Bot,
    repo: Repositories,
    link: TelegramLink | None,
    clock: Clock,
    state: FSMContext,
) -> None:
    await callback.answer()
    if link is None:
        await show(callback, texts.NOT_LINKED)
        return
    account_id, chat_id = link.account_id, link.chat_id
    await unlink_account(repo, account_id, clock=clock, tell=None)
    await state.clear()
    log.info("account %s unlinked by /logout", account_id)
    await show(callback, texts.LOGOUT_DONE)
    await set_chat_commands(bot, chat_id, None)


async def logout_cancelled(callback: CallbackQuery, link: TelegramLink | None) -> None:
    await callback.answer()
    if link is None:
        await show(callback, texts.NOT_LINKED)
        return
    await show(callback, texts.LOGOUT_KEPT, keyboards.back_to_menu())


def build_router() -> Router:
    router = Router(name="linking")
    router.message.filter(F.chat.type == ChatType.PRIVATE)
    # Every /start payload is a link token but the links to a card (`app_<number>`).
    router.message.register(redeem, CommandStart(deep_link=True, magic=~F.args.regexp(APP_LINK)))
    router.message.register(logout_command, Command("logout"))
    router.callback_query.register(switch, LinkCb.filter(F.action == LinkAction.SWITCH))
    router.callback_query.register(keep, LinkCb.filter(F.action == LinkAction.KEEP))
    router.callback_query.register(
        answer_move,
        LinkCb.filter(F.action.in_({LinkAction.ALLOW_MOVE, LinkAction.DENY_MOVE})),
    )
    router.callback_query.register(logout_confirmed, LinkCb.filter(F.action == LinkAction.LOGOUT))
    router.callback_query.register(logout_cancelled, LinkCb.filter(F.action == LinkAction.STAY))
    return router
