"""The main menu of the active role (/start without a link token, /menu, «◀ В главное меню»)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandStart
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from bot import keyboards, texts
from bot.callbacks import MenuAction, MenuCb
from bot.filters import ActiveRole
from bot.render import show
from services.applications import menu_count
from services.domain import Actor, Role
from storage.repositories import Repositories


async def render_menu(repo: Repositories, actor: Actor) -> tuple[str, InlineKeyboardMarkup]:
    count = await menu_count(repo, actor)
    text = texts.MENU_TITLE.format(name=texts.html(actor.full_name), role=actor.role.label)
    return text, keyboards.main_menu(actor.role, count)


async def menu_command(message: Message, repo: Repositories, actor: Actor) -> None:
    await show(message, *await render_menu(repo, actor))


async def menu_button(callback: CallbackQuery, repo: Repositories, actor: Actor) -> None:
    await callback.answer()
    await show(callback, *await render_menu(repo, actor))


def build_router() -> Router:
    router = Router(name="menu")
    router.message.filter(ActiveRole(*Role))
    router.callback_query.filter(ActiveRole(*Role))
    router.message.register(menu_command, CommandStart(deep_link=False))
    router.message.register(menu_command, Command("menu"))
    router.callback_query.register(menu_button, MenuCb.filter(F.action == MenuAction.HOME))
    return router
