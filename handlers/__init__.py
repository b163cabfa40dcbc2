"""aiogram routers only: they translate updates into service calls and render replies."""

from __future__ import annotations

from aiogram import Router

from handlers import (
    consent,
    director,
    errors,
    fallback,
    linking,
    listener,
    menu,
    notifications,
    profile,
    staff,
    start,
)


def build_router() -> Router:
    """The root router, built anew for each Dispatcher: errors first, then linking and the
    consent gate (nothing after it runs for a user who has not accepted the consent), the
    features; the last-resort answer to unclaimed buttons and the unlinked fallback come last."""
    root = Router(name="root")
    root.include_routers(
        errors.build_router(),
        linking.build_router(),
        consent.build_router(),
        menu.build_router(),
        notifications.build_router(),
        profile.build_router(),
        director.build_router(),
        listener.build_router(),
        staff.build_router(),
        fallback.build_router(),
        start.build_router(),
    )
    return root
