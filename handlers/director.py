"""The director's («Руководитель ОО») applications: those of the director's organisation, the
unprocessed ones first; approve or cancel with a comment (steps 5-8 of the seed instruction).
The screens and decisions are the shared ones of handlers.applications."""

from __future__ import annotations

from aiogram import Router

from handlers import applications
from services.domain import Role


def build_router() -> Router:
    return applications.build_router(Role.DIRECTOR)
