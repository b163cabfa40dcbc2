"""Consent gating: a linked user who has not accepted the personal-data consent gets the consent
screen for every message and every button, until «Ознакомился»; nothing else works before it.

Placed right after the linking router, so only `/start <token>` and `/logout` (and their
buttons) pass before the consent: switching accounts and withdrawing need no consent."""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.enums import ChatType
from aiogram.types import CallbackQuery, Message

from bot import keyboards
from bot.callbacks import ConsentAction, ConsentCb
from bot.commands import set_chat_commands
from bot.filters import NeedsConsent
from bot.render import show
from bot.texts import linking as texts
from handlers.menu import render_menu
from services.clock import Clock
from services.linking import accept_consent, actor_for
from storage.models import TelegramLink
from storage.repositories import Repositories


async def consent_screen(message: Message) -> None:
    await message.answer(texts.CONSENT_TEXT, reply_markup=keyboards.consent())


async def accept(
    callback: CallbackQuery, bot: Bot, repo: Repositories, link: TelegramLink, clock: Clock
) -> None:
    """«Ознакомился»: the time and the text's version are stored, the main menu opens."""
    accept_consent(link, version=texts.CONSENT_VERSION, clock=clock)
    await callback.answer(texts.CONSENT_ACCEPTED)
    actor = actor_for(link)
    await show(callback, *await render_menu(repo, actor))
    await set_chat_commands(bot, link.chat_id, actor.role)


async def any_other_button(callback: CallbackQuery) -> None:
    await callback.answer(texts.CONSENT_REQUIRED)
    await show(callback, texts.CONSENT_TEXT, keyboards.consent())


def build_router() -> Router:
    router = Router(name="consent")
    router.message.filter(NeedsConsent(), F.chat.type == ChatType.PRIVATE)
    router.callback_query.filter(NeedsConsent())
    router.message.register(consent_screen)
    router.callback_query.register(accept, ConsentCb.filter(F.action == ConsentAction.ACCEPT))
    router.callback_query.register(any_other_button)
    return router
