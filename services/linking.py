"""One-time link tokens and Telegram bindings (SPEC "Linking a Telegram user…").

Tokens carry at least 128 bits from `secrets`, are stored only as a SHA-256 hash, are single use
and expire. One account has at most one Telegram user and one Telegram user at most one account.

Two ways in, both ending in `bind`:
* portal first: the web module mints a token for an account (`mint_portal_token`), the person
  opens `t.me/<bot>?start=<token>` and the bot redeems it (`redeem_portal_token`); a Telegram
  user bound to another account confirms the switch first (`confirm_switch`);
* bot first: the bot mints a token for a Telegram user (`mint_bot_token`) and shows
  `<PUBLIC_URL>/link/<token>`; the web page signs the person in through OpenID Connect
  (`open_bot_token`, `begin_sign_in`, `sign_in_by_state`), finds the account by the ESIA oid or
  the SNILS hash (`match_account`), asks to confirm (`propose_binding`) and binds
  (`confirm_sign_in`).
Failed redemptions are counted per Telegram user in the database, so the limit holds across
replicas (`THROTTLE_LIMIT` in `THROTTLE_WINDOW`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from services.clock import Clock
from services.domain import Actor, Role
from storage.models import Account, LinkToken, TelegramLink
from storage.repositories import Repositories

TOKEN_BYTES = 24  # 192 bits; 32 characters of [A-Za-z0-9_-], within /start's 64
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{32}$")

THROTTLE_LIMIT = 5
THROTTLE_WINDOW = timedelta(minutes=1)
# Used and expired token rows are kept a day, so a late click still hears «уже использована».
TOKEN_RETENTION = timedelta(days=1)

# The role a new binding starts in: the one with the most to do in the bot.
ROLE_PRIORITY = (Role.DIRECTOR, Role.STAFF, Role.LISTENER)

# Outbox kind of the message that tells a chat its binding is gone (rendered by bot/pushes.py);
# payload {"reason": UnlinkReason}.
UNLINKED_KIND = "unlinked"


class UnlinkReason(StrEnum):
    REVOKED = "revoked"  # the web module (or an operator) revoked the binding
    MOVED = "moved"  # the account was linked from another Telegram user


class Refusal(StrEnum):
    """Why linking did not happen; each has its own message for the person."""

    MALFORMED = "malformed"
    UNKNOWN = "unknown"
    USED = "used"
    EXPIRED = "expired"
    THROTTLED = "throttled"
    NO_ROLES = "no_roles"
    NO_ACCOUNT = "no_account"
    ACCOUNT_LINKED_ELSEWHERE = "account_linked_elsewhere"
    TELEGRAM_LINKED_ELSEWHERE = "telegram_linked_elsewhere"


@dataclass(frozen=True)
class LinkRefused:
    reason: Refusal


@dataclass(frozen=True)
class Linked:
    """The Telegram user is bound to the account (anew, or `already` was)."""

    link: TelegramLink
    actor: Actor
    already: bool = False
    moved_from_chat: int | None = None


@dataclass(frozen=True)
class SwitchNeeded:
    """The Telegram user is bound to another account: ask before switching to this one."""

    token_id: int
    current_name: str
    target_name: str


RedeemOutcome = Linked | SwitchNeeded | LinkRefused


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def is_well_formed(token: str) -> bool:
    return TOKEN_PATTERN.fullmatch(token) is not None


# A SNILS is 11 ASCII digits, grouped by spaces or hyphens («112-233-445 95»). Other Unicode
# digits («１１２…», «١١٢…») are refused rather than read: Python's \d would take them, and the same
# number would then hash differently from its ASCII spelling and match no account.
SNILS_SEPARATORS = re.compile(r"[ \t-]")
SNILS_DIGITS = re.compile(r"[0-9]{11}")


def normalize_snils(snils: str) -> str | None:
    """The 11 digits of a SNILS written in any usual way, or None if it is not one."""
    digits = SNILS_SEPARATORS.sub("", snils)
    return digits if SNILS_DIGITS.fullmatch(digits) else None


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


# -- roles, consent, the actor ---------------------------------------------------------------


def account_roles(account: Account) -> frozenset[Role]:
    return frozenset(Role(code) for code in account.role_codes)


def default_role(roles: frozenset[Role]) -> Role | None:
    return next((role for role in ROLE_PRIORITY if role in roles), None)


def actor_for(link: TelegramLink) -> Actor:
    """The account behind a Telegram binding, acting in the link's active role.

    If the web module has since taken that role away, the first remaining role is active.
    """
    account = link.account
    roles = account_roles(account)
    role = Role(link.active_role)
    if role not in roles and roles:
        role = default_role(roles) or role
    return Actor(
        account_id=account.id,
        full_name=account.full_name,
        role=role,
        roles=roles,
        organization_id=account.organization_id,
    )


def switch_role(link: TelegramLink, role: Role) -> Actor | None:
    """Make one of the account's roles active; None if the account does not hold it."""
    if role not in account_roles(link.account):
        return None
    link.active_role = role.value
    return actor_for(link)


def has_consent(link: TelegramLink, version: str) -> bool:
    """Whether the person accepted the current version of the personal-data consent."""
    return link.consent_at is not None and link.consent_version == version


def accept_consent(link: TelegramLink, *, version: str, clock: Clock) -> None:
    link.consent_at = clock.now()
    link.consent_version = version


# -- throttling ------------------------------------------------------------------------------


async def is_throttled(repo: Repositories, telegram_user_id: int, now: datetime) -> bool:
    since = now - THROTTLE_WINDOW
    return await repo.links.count_failures(telegram_user_id, since) >= THROTTLE_LIMIT


async def record_failure(repo: Repositories, telegram_user_id: int, now: datetime) -> None:
    await repo.links.purge_failures(telegram_user_id, now - THROTTLE_WINDOW)
    await repo.links.add_failure(telegram_user_id, now)


def token_refusal(row: LinkToken | None, now: datetime) -> Refusal | None:
    if row is None:
        return Refusal.UNKNOWN
    if row.used_at is not None:
        return Refusal.USED
    if row.expires_at <= now:
        return Refusal.EXPIRED
    return None


# -- binding ---------------------------------------------------------------------------------


async def bind(
    repo: Repositories, account: Account, *, telegram_user_id: int, chat_id: int, now: datetime
) -> Linked | LinkRefused:
    """Bind a Telegram user to an account, keeping both sides one-to-one.

    The Telegram user's binding to another account is replaced; the account's binding to
    another Telegram user moves here and that chat is told through the outbox.
    """
    mine = await repo.links.by_telegram_user(telegram_user_id)
    if mine is not None and mine.account_id == account.id:
        return Linked(link=mine, actor=actor_for(mine), already=True)
    role = default_role(account_roles(account))
    if role is None:
        return LinkRefused(Refusal.NO_ROLES)
    if mine is not None:
        await repo.links.remove(mine)
    moved_from_chat = None
    theirs = await repo.links.by_account(account.id)
    if theirs is not None:
        moved_from_chat = theirs.chat_id
        await repo.links.remove(theirs)
        if not theirs.blocked:
            enqueue_unlinked(repo, theirs.chat_id, UnlinkReason.MOVED, now)
    await repo.outbox.drop_pending(chat_id=chat_id, kind=UNLINKED_KIND)
    link = TelegramLink(
        account_id=account.id,
        account=account,
        telegram_user_id=telegram_user_id,
        chat_id=chat_id,
        active_role=role.value,
        consent_at=None,
        consent_version=None,
        muted=False,
        digest_enabled=True,
        blocked=False,
        linked_at=now,
    )
    repo.session.add(link)
    await repo.session.flush()
    return Linked(link=link, actor=actor_for(link), moved_from_chat=moved_from_chat)


def enqueue_unlinked(repo: Repositories, chat_id: int, reason: UnlinkReason, now: datetime) -> None:
    """Tell a chat, through the outbox, that it is no longer bound to its account."""
    repo.outbox.add(
        channel="telegram",
        kind=UNLINKED_KIND,
        account_id=None,
        chat_id=chat_id,
        application_number=None,
        event_id=None,
        payload={"reason": reason.value},
        state="pending",
        attempts=0,
        available_at=now,
        created_at=now,
    )


async def unlink_account(
    repo: Repositories,
    account_id: int,
    *,
    clock: Clock,
    tell: UnlinkReason | None = UnlinkReason.REVOKED,
) -> TelegramLink | None:
    """Remove the account's Telegram binding and the chat's pending pushes; the removed link
    is returned. Unused tokens of the account and of its Telegram user are revoked too.

    `tell`: the reason the chat is told through the outbox, or None when the person is told
    directly (their own /logout).
    """
    await repo.links.delete_unused_tokens(account_id=account_id)
    link = await repo.links.by_account(account_id)
    if link is None:
        return None
    await repo.links.delete_unused_tokens(telegram_user_id=link.telegram_user_id)
    await repo.links.remove(link)
    if tell is not None and not link.blocked:
        enqueue_unlinked(repo, link.chat_id, tell, clock.now())
    return link


# -- portal first ----------------------------------------------------------------------------


async def mint_portal_token(
    repo: Repositories, account_id: int, *, ttl: timedelta, clock: Clock
) -> MintedToken:
    """A portal-first token for an account, to be shown as a t.me link by the web module."""
    if await repo.accounts.get(account_id) is None:
        raise UnknownAccountError(account_id)
    return await _mint(repo, kind="portal", ttl=ttl, clock=clock, account_id=account_id)


async def _mint(
    repo: Repositories, *, kind: str, ttl: timedelta, clock: Clock, **values: Any
) -> MintedToken:
    now = clock.now()
    await repo.links.purge_tokens(now - TOKEN_RETENTION)
    token = new_token()
    repo.session.add(
        LinkToken(
            token_hash=token_hash(token), kind=kind, created_at=now, expires_at=now + ttl, **values
        )
    )
    await repo.session.flush()
    return MintedToken(token=token, expires_at=now + ttl)


async def redeem_portal_token(
    repo: Repositories, token: str, *, telegram_user_id: int, chat_id: int, clock: Clock
) -> RedeemOutcome:
    """`/start <token>`: bind, or ask to switch accounts, or say why not.

    A throttled user's attempts are not even looked at; every other refusal counts.
    """
    now = clock.now()
    if await is_throttled(repo, telegram_user_id, now):
        return LinkRefused(Refusal.THROTTLED)
    row = None
    if is_well_formed(token):
        row = await repo.links.token_by_hash(token_hash(token), "portal")
        refusal = token_refusal(row, now)
    else:
        refusal = Refusal.MALFORMED
    if refusal is not None or row is None or row.account_id is None:
        await record_failure(repo, telegram_user_id, now)
        return LinkRefused(refusal or Refusal.UNKNOWN)
    account = await repo.accounts.get(row.account_id)
    mine = await repo.links.by_telegram_user(telegram_user_id)
    if account is not None and mine is not None and mine.account_id != account.id:
        row.telegram_user_id = telegram_user_id
        row.chat_id = chat_id
        await repo.session.flush()
        return SwitchNeeded(
            token_id=row.id, current_name=mine.account.full_name, target_name=account.full_name
        )
    return await _use_and_bind(repo, row, account, telegram_user_id, chat_id, now)


async def confirm_switch(
    repo: Repositories, token_id: int, *, telegram_user_id: int, chat_id: int, clock: Clock
) -> Linked | LinkRefused:
    """The Telegram user agreed to leave their account for the token's one."""
    now = clock.now()
    row = await repo.links.token_by_id(token_id)
    if row is None or row.kind != "portal" or row.telegram_user_id != telegram_user_id:
        return LinkRefused(Refusal.UNKNOWN)
    refusal = token_refusal(row, now)
    if refusal is not None or row.account_id is None:
        return LinkRefused(refusal or Refusal.UNKNOWN)
    account = await repo.accounts.get(row.account_id)
    return await _use_and_bind(repo, row, account, telegram_user_id, chat_id, now)


async def cancel_switch(repo: Repositories, token_id: int, *, telegram_user_id: int) -> None:
    """The Telegram user keeps their account; the token stays valid until it expires."""
    row = await repo.links.token_by_id(token_id)
    if row is not None and row.kind == "portal" and row.telegram_user_id == telegram_user_id:
        row.telegram_user_id = None
        row.chat_id = None
        await repo.session.flush()


async def _use_and_bind(
    repo: Repositories,
    row: LinkToken,
    account: Account | None,
    telegram_user_id: int,
    chat_id: int,
    now: datetime,
) -> Linked | LinkRefused:
    if account is None:
        return LinkRefused(Refusal.UNKNOWN)
    if not account_roles(account):
        return LinkRefused(Refusal.NO_ROLES)
    if not await repo.links.use_token(row.id, now):
        return LinkRefused(Refusal.USED)
    return await bind(repo, account, telegram_user_id=telegram_user_id, chat_id=chat_id, now=now)


# -- bot first -------------------------------------------------------------------------------


async def mint_bot_token(
    repo: Repositories,
    *,
    telegram_user_id: int,
    chat_id: int,
    telegram_name: str,
    ttl: timedelta,
    clock: Clock,
) -> MintedToken:
    """A bot-first token for a Telegram user; their earlier unused ones are revoked."""
    await repo.links.delete_unused_tokens(telegram_user_id=telegram_user_id)
    return await _mint(
        repo,
        kind="bot",
        ttl=ttl,
        clock=clock,
        telegram_user_id=telegram_user_id,
        chat_id=chat_id,
        telegram_name=telegram_name[:255],
    )


async def open_bot_token(repo: Repositories, token: str, *, clock: Clock) -> LinkToken | Refusal:
    """The bot-first token behind `GET /link/<token>`, if it may still be used."""
    if not is_well_formed(token):
        return Refusal.MALFORMED
    row = await repo.links.token_by_hash(token_hash(token), "bot")
    refusal = token_refusal(row, clock.now())
    if refusal is not None or row is None:
        return refusal or Refusal.UNKNOWN
    return row


def begin_sign_in(
    row: LinkToken, *, state: str, nonce: str, code_verifier: str, browser_key: str
) -> None:
    """Remember an OpenID Connect sign-in started for the token (a new one replaces it)."""
    row.oidc_state_hash = token_hash(state)
    row.oidc_nonce = nonce
    row.oidc_code_verifier = code_verifier
    row.browser_key_hash = token_hash(browser_key)
    row.account_id = None


async def sign_in_by_state(
    repo: Repositories, state: str, browser_key: str | None, *, clock: Clock
) -> LinkToken | Refusal | None:
    """The sign-in a provider's callback belongs to; None if the state or browser differs."""
    row = await repo.links.token_by_state_hash(token_hash(state))
    if row is None or browser_key is None or row.browser_key_hash is None:
        return None
    if not hmac.compare_digest(row.browser_key_hash, token_hash(browser_key)):
        return None
    return token_refusal(row, clock.now()) or row


async def pending_sign_in(
    repo: Repositories, browser_key: str | None, *, clock: Clock
) -> LinkToken | Refusal | None:
    """The sign-in waiting for confirmation in this browser; None if there is none."""
    if browser_key is None:
        return None
    row = await repo.links.token_by_browser_key_hash(token_hash(browser_key))
    if row is None or row.account_id is None:
        return None
    return token_refusal(row, clock.now()) or row


def claim_text(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if isinstance(value, int | str) and not isinstance(value, bool) and str(value).strip():
        return str(value).strip()
    return None


async def match_account(
    repo: Repositories,
    claims: Mapping[str, Any],
    *,
    oid_claim: str,
    snils_claim: str,
    snils_key: str | None,
) -> Account | None:
    """The account of a signed-in person: by the ESIA oid, else by the SNILS keyed hash."""
    oid = claim_text(claims, oid_claim)
    if oid is not None:
        account = await repo.accounts.by_esia_oid(oid)
        if account is not None:
            return account
    snils = claim_text(claims, snils_claim)
    if snils is not None and snils_key is not None and normalize_snils(snils) is not None:
        return await repo.accounts.by_snils_hash(snils_hash(snils, snils_key))
    return None


async def binding_refusal(
    repo: Repositories, row: LinkToken, account: Account
) -> LinkRefused | None:
    """Why a bot-first sign-in may not bind this account to the token's Telegram user.

    Unlike a portal-first link, a bot-first link is made on the Telegram side and may have
    been sent by someone else; so it never takes an account away from another Telegram user.
    """
    if not account_roles(account):
        return LinkRefused(Refusal.NO_ROLES)
    theirs = await repo.links.by_account(account.id)
    if theirs is not None and theirs.telegram_user_id != row.telegram_user_id:
        return LinkRefused(Refusal.ACCOUNT_LINKED_ELSEWHERE)
    if row.telegram_user_id is not None:
        mine = await repo.links.by_telegram_user(row.telegram_user_id)
        if mine is not None and mine.account_id != account.id:
            return LinkRefused(Refusal.TELEGRAM_LINKED_ELSEWHERE)
    return None


async def propose_binding(
    repo: Repositories, row: LinkToken, account: Account
) -> LinkRefused | None:
    """After the sign-in: remember the account to confirm, or say why it cannot be bound."""
    refused = await binding_refusal(repo, row, account)
    if refused is None:
        row.account_id = account.id
        await repo.session.flush()
    return refused


async def confirm_sign_in(
    repo: Repositories, row: LinkToken, *, clock: Clock
) -> Linked | LinkRefused:
    """The person confirmed on the page: bind (checked again, things may have moved)."""
    now = clock.now()
    account = await repo.accounts.get(row.account_id) if row.account_id is not None else None
    if account is None or row.telegram_user_id is None or row.chat_id is None:
        return LinkRefused(Refusal.NO_ACCOUNT)
    refused = await binding_refusal(repo, row, account)
    if refused is not None:
        return refused
    telegram_user_id, chat_id = row.telegram_user_id, row.chat_id
    if not await repo.links.use_token(row.id, now):
        return LinkRefused(Refusal.USED)
    return await bind(repo, account, telegram_user_id=telegram_user_id, chat_id=chat_id, now=now)


async def end_sign_in(repo: Repositories, row: LinkToken, *, clock: Clock) -> None:
    """The sign-in was cancelled or failed for good: the token cannot be used again."""
    await repo.links.use_token(row.id, clock.now())
