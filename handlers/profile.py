"""«👤 Профиль / сменить роль» and «❓ Помощь» of a linked user: the profile (ФИО, organisation,
roles, active role), «Сменить роль» listing the account's roles, and help for the active role.
Switching the role edits the message into the main menu of the new role, and the chat's
commands follow it."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from bot import keyboards
from bot.callbacks import ConsentCb, MenuAction, MenuCb, ProfileAction, ProfileCb
from bot.commands import set_chat_commands
from bot.filters import ActiveRole
from bot.render import show
from bot.texts import html
from bot.texts import linking as texts
from handlers.menu import render_menu
from services.domain import Actor, Role
from services.linking import switch_role
from storage.models import TelegramLink
from storage.repositories import Repositories


async def render_profile(repo: Repositories, actor: Actor) -> tuple[str, InlineKeyboardMarkup]:
    organization = (
        await repo.accounts.organization(actor.organization_id)
        if actor.organization_id is not None
        else None
    )
    roles = ", ".join(role.label for role in Role if role in actor.roles)
    text = texts.PROFILE.format(
        name=html(actor.full_name),
        organization=html(organization.name if organization is not None else texts.NOT_SPECIFIED),
        roles=html(roles or texts.NOT_SPECIFIED),
        role=html(actor.role.label),
    )
    return text, keyboards.profile()


def render_help(actor: Actor) -> str:
    return texts.HELP_LINKED.format(
        name=html(actor.full_name), role=actor.role.label, role_help=texts.ROLE_HELP[actor.role]
    )


async def profile_command(message: Message, repo: Repositories, actor: Actor) -> None:
    await show(message, *await render_profile(repo, actor))


async def profile_button(callback: CallbackQuery, repo: Repositories, actor: Actor) -> None:
    await callback.answer()
    await show(callback, *await render_profile(repo, actor))


async def roles_button(callback: CallbackQuery, actor: Actor) -> None:
    """«Сменить роль»: the account's roles, the active one ticked."""
    await callback.answer()
    await show(callback, texts.ROLES_TITLE, keyboards.roles(actor.roles, actor.role))


async def set_role(
    callback: CallbackQuery,
    callback_data: ProfileCb,
    bot: Bot,
    repo: Repositories,
    link: TelegramLink,
    actor: Actor,
) -> None:
    """A role chosen: the menu of that role, in place. A role the account lacks is refused."""
    new_actor = switch_role(link, callback_data.role) if callback_data.role is not None else None
    if new_actor is None:
        await callback.answer(texts.ROLE_NOT_YOURS, show_alert=True)
        await show(callback, texts.ROLES_TITLE, keyboards.roles(actor.roles, actor.role))
        return
    await callback.answer(texts.ROLE_SWITCHED.format(role=new_actor.role.label))
    await show(callback, *await render_menu(repo, new_actor))
    await set_chat_commands(bot, link.chat_id, new_actor.role)


async def consent_again(callback: CallbackQuery, repo: Repositories, actor: Actor) -> None:
    """«Ознакомился» on an older consent screen, after the consent was accepted."""
    await callback.answer(texts.CONSENT_ACCEPTED)
    await show(callback, *await render_menu(repo, actor))


async def help_command(message: Message, actor: Actor) -> None:
    await message.answer(render_help(actor), reply_markup=keyboards.back_to_menu())


async def help_button(callback: CallbackQuery, actor: Actor) -> None:
    await callback.answer()
    await show(callback, render_help(actor), keyboards.back_to_menu())


def build_router() -> Router:
    router = Router(name="profile")
    router.message.filter(ActiveRole(*Role))
    router.callback_query.filter(ActiveRole(*Role))
    router.message.register(profile_command, Command("profile"))
    router.message.register(help_command, Command("help"))
    router.callback_query.register(profile_button, MenuCb.filter(F.action == MenuAction.PROFILE))
    router.callback_query.register(help_button, MenuCb.filter(F.action == MenuAction.HELP))
    router.callback_query.register(roles_button, ProfileCb.filter(F.action == ProfileAction.ROLES))
    router.callback_query.register(set_role, ProfileCb.filter(F.action == ProfileAction.SET_ROLE))
    router.callback_query.register(consent_again, ConsentCb.filter())
    return router
