"""aiogram routers only: they translate updates into service calls and render replies."""

from __future__ import annotations

from aiogram import Router

from handlers import errors, start


def build_router() -> Router:
    """The root router: errors first, then the features."""
    root = Router(name="root")
    root.include_routers(errors.router, start.router)
    return root
