"""The last resort for button presses no feature router took: a button from before an update or
a role switch, another role's button, or forged callback data. Every press gets an answer, so
no button spins forever, and nothing changes."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery

from bot import texts


async def stale_button(callback: CallbackQuery) -> None:
    await callback.answer(texts.STALE_BUTTON, show_alert=True)


def build_router() -> Router:
    router = Router(name="fallback")
    router.callback_query.register(stale_button)
    return router
