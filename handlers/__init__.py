"""aiogram routers only: they translate updates into service calls and render replies."""

from __future__ import annotations

from aiogram import Router

from handlers import errors, menu, notifications, start


def build_router() -> Router:
    """The root router, built anew for each Dispatcher: errors first, then the features."""
    root = Router(name="root")
    root.include_routers(
        errors.build_router(),
        menu.build_router(),
        notifications.build_router(),
        start.build_router(),
    )
    return root
