"""aiogram routers only: they translate updates into service calls and render replies."""

from __future__ import annotations

from aiogram import Router

from handlers import consent, errors, linking, menu, profile, start


def build_router() -> Router:
    """The root router, built anew for each Dispatcher: errors first, then linking and the
    consent gate (nothing after it runs for a user who has not accepted the consent), the
    features, and the unlinked fallback last."""
    root = Router(name="root")
    root.include_routers(
        errors.build_router(),
        linking.build_router(),
        consent.build_router(),
        menu.build_router(),
        profile.build_router(),
        start.build_router(),
    )
    return root
