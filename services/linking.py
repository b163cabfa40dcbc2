"""One-time link tokens and Telegram bindings (SPEC "Linking a Telegram user…").

Tokens carry at least 128 bits from `secrets`, are stored only as a SHA-256 hash, are single use
and expire. One account has at most one Telegram user and one Telegram user at most one account.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from services.clock import Clock
from services.domain import Actor, Role
from storage.models import Account, LinkToken, OutboxMessage, TelegramLink
from storage.repositories import Repositories

TOKEN_BYTES = 24  # 192 bits; 32 characters of [A-Za-z0-9_-], within /start's 64
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{32}$")


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def is_well_formed(token: str) -> bool:
    return TOKEN_PATTERN.fullmatch(token) is not None


def normalize_snils(snils: str) -> str | None:
    """The 11 digits of a SNILS written in any usual way, or None if it is not one."""
    digits = re.sub(r"[\s-]", "", snils)
    return digits if re.fullmatch(r"\d{11}", digits) else None


def snils_hash(snils: str, key: str) -> str:
    """Keyed hash of a SNILS for matching; the SNILS itself is never stored."""
    digits = normalize_snils(snils)
    if digits is None:
        raise ValueError("not a SNILS")
    return hmac.new(key.encode(), digits.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class MintedToken:
    token: str
    expires_at: datetime


class UnknownAccountError(LookupError):
    def __init__(self, account_id: int) -> None:
        super().__init__(f"Учётная запись {account_id} не найдена")
        self.account_id = account_id


def deep_link(bot_username: str, payload: str) -> str:
    return f"https://t.me/{bot_username}?start={payload}"


async def mint_portal_token(
    repo: Repositories, account_id: int, *, ttl: timedelta, clock: Clock
) -> MintedToken:
    """A portal-first token for an account, to be shown as a t.me link by the web module."""
    if await repo.session.get(Account, account_id) is None:
        raise UnknownAccountError(account_id)
    now = clock.now()
    token = new_token()
    repo.session.add(
        LinkToken(
            token_hash=token_hash(token),
            kind="portal",
            account_id=account_id,
            created_at=now,
            expires_at=now + ttl,
        )
    )
    await repo.session.flush()
    return MintedToken(token=token, expires_at=now + ttl)


async def unlink_account(
    repo: Repositories, account_id: int, *, clock: Clock
) -> TelegramLink | None:
    """Remove the account's Telegram binding and the chat's pending pushes; the removed link
    is returned so the caller can tell the chat. Unused tokens of the account are revoked too."""
    link = (
        await repo.session.execute(
            select(TelegramLink).where(TelegramLink.account_id == account_id)
        )
    ).scalar_one_or_none()
    await repo.session.execute(
        delete(LinkToken).where(LinkToken.account_id == account_id, LinkToken.used_at.is_(None))
    )
    if link is None:
        return None
    await repo.session.execute(
        delete(OutboxMessage).where(
            OutboxMessage.chat_id == link.chat_id,
            OutboxMessage.channel == "telegram",
            OutboxMessage.state.in_(("pending", "held")),
        )
    )
    await repo.session.delete(link)
    await repo.session.flush()
    return link


def actor_for(link: TelegramLink) -> Actor:
    """The account behind a Telegram binding, acting in the link's active role.

    If the web module has since taken that role away, the first remaining role is active.
    """
    account = link.account
    roles = frozenset(Role(code) for code in account.role_codes)
    role = Role(link.active_role)
    if role not in roles and roles:
        role = sorted(roles)[0]
    return Actor(
        account_id=account.id,
        full_name=account.full_name,
        role=role,
        roles=roles,
        organization_id=account.organization_id,
    )
