"""aiogram routers only: they translate updates into service calls and render replies."""

from __future__ import annotations

from aiogram import Router

from handlers import director, errors, fallback, menu, start


def build_router() -> Router:
    """The root router, built anew for each Dispatcher: errors first, then the features; the
    last-resort answer to unclaimed buttons and the unlinked fallback come last."""
    root = Router(name="root")
    root.include_routers(
        errors.build_router(),
        menu.build_router(),
        director.build_router(),
        fallback.build_router(),
        start.build_router(),
    )
    return root
