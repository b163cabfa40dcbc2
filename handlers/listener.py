"""The applicant's («Слушатель») «📄 Мои заявки»: own applications in every status, the card with
comments and history, cancelling an own application (new or approved) after a confirmation
with an optional reason, comments to the directors. The screens and decisions are the shared
ones of handlers.applications; the rules decide that only «❌ Отменить» is the applicant's."""

from __future__ import annotations

from aiogram import Router

from handlers import applications
from services.domain import Role


def build_router() -> Router:
    return applications.build_router(Role.LISTENER)
