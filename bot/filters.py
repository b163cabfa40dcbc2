"""Router filters set once on a role's router, never repeated per handler."""

from __future__ import annotations

from aiogram.filters import Filter
from aiogram.types import TelegramObject

from bot.texts.linking import CONSENT_VERSION
from services.domain import Actor, Role
from services.linking import has_consent
from storage.models import TelegramLink


class ActiveRole(Filter):
    """A linked user who accepted the consent and acts in one of the given roles."""

    def __init__(self, *roles: Role) -> None:
        self.roles = frozenset(roles)

    async def __call__(
        self,
        event: TelegramObject,
        actor: Actor | None = None,
        link: TelegramLink | None = None,
    ) -> bool:
        return (
            actor is not None
            and link is not None
            and has_consent(link, CONSENT_VERSION)
            and actor.role in self.roles
        )


class Unlinked(Filter):
    """A Telegram user not bound to any account."""

    async def __call__(self, event: TelegramObject, link: TelegramLink | None = None) -> bool:
        return link is None


class NeedsConsent(Filter):
    """A linked user who has not yet accepted the current personal-data consent."""

    async def __call__(self, event: TelegramObject, link: TelegramLink | None = None) -> bool:
        return link is not None and not has_consent(link, CONSENT_VERSION)
