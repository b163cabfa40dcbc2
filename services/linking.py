"""One-time link tokens and bindings of accounts to messenger users (docs/linking.md).

A person (account) may be bound in several messengers: one binding per messenger
(`storage.models.Binding`). Services work on a `MessengerUser` (messenger, user id, chat), never
on one messenger's ids; what belongs to the person (active role, consent, mute, digest, where
pushes go) is on the account.

Tokens carry at least 128 bits from `secrets`, are stored only as a SHA-256 hash, are single use
and expire. One account has at most one user per messenger and one messenger user at most one
account.

Two ways in, both ending in `bind`:
* portal first: the web module mints a token for an account (`mint_portal_token`), the person
  opens the messenger's deep link with it (built by the front end: bot/links.py) and the bot
  redeems it (`redeem_portal_token`) in whichever messenger it was opened; a messenger user
  bound to another account confirms the switch first (`confirm_switch`). An account bound to
  another user of that messenger moves only with that user's permission, asked in their chat
  (`allow_move`, `deny_move`; unanswered, the request expires with the token:
  `expire_move_requests`), or after the binding was revoked (`unlink_account`). An account
  bound in other messengers only gets a binding in this one with the permission of one of
  those bindings' owners, asked the same way (an add request: nothing moves);
* bot first: the bot mints a token for a messenger user (`mint_bot_token`) and shows
  `<PUBLIC_URL>/link/<token>` as a mini app; the web page checks the launch data signed by
  the messenger (services/launch.py) names that very user (`open_sign_in`), signs the person
  in through OpenID Connect (`begin_sign_in`, `sign_in_by_state`), finds the account by the
  ESIA oid or the SNILS hash (`match_account`), asks to confirm (`propose_binding`) and binds
  (`confirm_sign_in`). It never takes an account from another user of the messenger.
Failed redemptions are counted in the database, so the limits hold across replicas: per
messenger user (`THROTTLE_LIMIT`) and overall (`THROTTLE_OVERALL_LIMIT`) in `THROTTLE_WINDOW`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.clock import Clock
from services.domain import Actor, Role
from services.launch import CLOCK_SKEW, LaunchProblem, LaunchUser
from services.outbox import new_row
from services.periodic import run_periodically
from storage.models import Account, Binding, LinkToken
from storage.repositories import Repositories
from storage.senders import Facts

log = logging.getLogger(__name__)

TOKEN_BYTES = 24  # 192 bits; 32 characters of [A-Za-z0-9_-], within /start's 64
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{32}$")

THROTTLE_LIMIT = 5  # failed attempts of one messenger user in the window
# Failed attempts of everyone together in the window: many users guessing a few times each
# are stopped too (everyone then waits out the window; guessing a token stays hopeless).
THROTTLE_OVERALL_LIMIT = 60
THROTTLE_WINDOW = timedelta(minutes=1)
# Used and expired token rows are kept a day, so a late click still hears «уже использована».
TOKEN_RETENTION = timedelta(days=1)
MOVE_CHECK_INTERVAL = 30.0  # seconds between two looks for expired move requests

# The role a new binding starts in: the one with the most to do in the bot.
ROLE_PRIORITY = (Role.DIRECTOR, Role.STAFF, Role.LISTENER)

# Outbox kinds of linking (rendered by bot/conversation/pushes.py):
# - the chat's binding is gone; payload {"reason": UnlinkReason}; account_id empty;
UNLINKED_KIND = "unlinked"
# - to the bound owner: «Разрешить привязку к другому аккаунту?» (a move), or to the owner of
#   a binding in another messenger: «Разрешить привязку MAX-аккаунта …?» (an add);
#   payload {"token": id};
MOVE_REQUEST_KIND = "move_request"
# - to the messenger user who asked: payload {"outcome": MoveOutcome}, with "adding": true
#   when the request was to add a binding beside the account's other ones;
MOVE_OUTCOME_KIND = "move_outcome"
# - the personal-data consent, the first screen of a binding made outside its chat.
CONSENT_KIND = "consent"


class UnlinkReason(StrEnum):
    REVOKED = "revoked"  # the web module (or an operator) revoked the binding


class MoveOutcome(StrEnum):
    """What became of a request to move an account's binding to another messenger user."""

    ALLOWED = "allowed"
    DENIED = "denied"
    EXPIRED = "expired"  # the owner did not answer before the token expired
    RELEASED = "released"  # the owner's binding was removed meanwhile: a new link is needed


class Refusal(StrEnum):
    """Why linking did not happen; each has its own message for the person."""

    MALFORMED = "malformed"
    UNKNOWN = "unknown"
    USED = "used"
    EXPIRED = "expired"
    THROTTLED = "throttled"
    THROTTLED_OVERALL = "throttled_overall"
    NO_ROLES = "no_roles"
    NO_ACCOUNT = "no_account"
    ACCOUNT_LINKED_ELSEWHERE = "account_linked_elsewhere"
    TELEGRAM_LINKED_ELSEWHERE = "telegram_linked_elsewhere"
    # Portal first, the account bound to another user of the messenger:
    OWNER_BLOCKED = "owner_blocked"  # who cannot be asked (blocked the bot): revoke first
    LOGOUT_FIRST = "logout_first"  # while this one is bound too: /logout here first
    # Portal first, the account bound in other messengers only (adding this one is asked there):
    ADD_OWNERS_BLOCKED = "add_owners_blocked"  # nobody can be asked there: unblock or revoke
    ADD_LOGOUT_FIRST = "add_logout_first"  # while this one is bound too: /logout here first
    ADD_BOUND_MEANWHILE = "add_bound_meanwhile"  # bound elsewhere since the check: ask again
    # Bot first, the sign-in page:
    NOT_LAUNCHED = "not_launched"  # not opened as the bot's mini app (no valid launch data)
    LAUNCH_STALE = "launch_stale"  # launch data too old, or already used
    OTHER_TELEGRAM_USER = "other_telegram_user"  # opened by someone the link was not for


@dataclass(frozen=True)
class MessengerUser:
    """A messenger user in a dialog with the bot, as a front end names them.

    `user_id` is what the messenger vouches for; `chat_id` the dialog with the bot (Telegram:
    the same number; MAX: another); `username` and `name` are what the user chose: shown,
    never trusted.
    """

    messenger: str
    user_id: int
    chat_id: int
    username: str | None = None
    name: str = ""


@dataclass(frozen=True)
class LinkRefused:
    """`elsewhere`: the messengers the refusal is about, where it names them
    (ADD_OWNERS_BLOCKED: where the account is bound and the bot blocked)."""

    reason: Refusal
    elsewhere: tuple[str, ...] = ()


@dataclass(frozen=True)
class Linked:
    """The messenger user is bound to the account (anew, or `already` was)."""

    binding: Binding
    actor: Actor
    already: bool = False


@dataclass(frozen=True)
class SwitchNeeded:
    """The messenger user is bound to another account: ask before switching to this one."""

    token_id: int
    current_name: str
    target_name: str


@dataclass(frozen=True)
class MoveRequested:
    """The account is bound to another user of the messenger, who is asked in their chat; or
    (`adding`) it is bound in other messengers only, `asked_in` them, and the binding asked
    for would be added beside those."""

    expires_at: datetime
    adding: bool = False
    asked_in: tuple[str, ...] = ()


@dataclass(frozen=True)
class MessengerAccount:
    """A messenger user as shown to someone asked to confirm a binding: the messenger, the
    numeric id and the @username, which the messenger vouches for, never the display name,
    which anyone can choose."""

    messenger: str
    user_id: int
    username: str | None


@dataclass(frozen=True)
class MoveDecided:
    """The owner answered a request: `linked` when allowed, None when denied; `adding` when
    it added a binding beside the owner's (the owner stays bound)."""

    requester: MessengerAccount
    linked: Linked | None
    adding: bool = False


RedeemOutcome = Linked | SwitchNeeded | MoveRequested | LinkRefused


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
        super().__init__(f"account {account_id} not found")
        self.account_id = account_id


# -- roles, consent, the actor ---------------------------------------------------------------


def account_roles(account: Facts) -> frozenset[Role]:
    return frozenset(Role(code) for code in account.role_codes)


def default_role(roles: frozenset[Role]) -> Role | None:
    return next((role for role in ROLE_PRIORITY if role in roles), None)


def actor_for(account: Facts) -> Actor:
    """The person behind a binding, acting in the account's active role.

    If the web module has since taken that role away (or none was chosen yet), the first
    remaining role is active.
    """
    roles = account_roles(account)
    chosen = Role(account.active_role) if account.active_role else None
    role = chosen if chosen in roles or not roles else default_role(roles)
    if role is None:  # an account without roles: it still acts, and may do nothing
        role = chosen or Role.LISTENER
    return Actor(
        account_id=account.id,
        full_name=account.full_name,
        role=role,
        roles=roles,
        organization_id=account.organization_id,
    )


def switch_role(account: Account, role: Role) -> Actor | None:
    """Make one of the account's roles active; None if the account does not hold it."""
    if role not in account_roles(account):
        return None
    account.active_role = role.value
    return actor_for(account)


def has_consent(account: Facts, version: str) -> bool:
    """Whether the person accepted the current version of the personal-data consent."""
    return account.consent_at is not None and account.consent_version == version


def accept_consent(account: Account, *, version: str, clock: Clock) -> None:
    account.consent_at = clock.now()
    account.consent_version = version


def start_afresh(account: Account, role: Role) -> None:
    """What the bot keeps of a person, as a first binding (no other messenger bound) starts
    it: the role with the most to do, the consent still to accept, pushes on, the digest on."""
    forget_person(account)
    account.active_role = role.value


def forget_person(account: Account) -> None:
    """What the bot keeps of a person dropped (no messenger is bound): no role, no consent,
    the settings as a first binding starts them."""
    account.active_role = None
    account.consent_at = None
    account.consent_version = None
    account.muted = False
    account.muted_at = None
    account.digest_enabled = True
    account.push_to = None


# -- throttling ------------------------------------------------------------------------------


async def throttle_refusal(
    repo: Repositories, messenger: str, user_id: int, now: datetime
) -> Refusal | None:
    """THROTTLED if this user, THROTTLED_OVERALL if everyone together failed too often lately."""
    since = now - THROTTLE_WINDOW
    if await repo.links.count_failures(messenger, user_id, since) >= THROTTLE_LIMIT:
        return Refusal.THROTTLED
    if await repo.links.count_all_failures(since) >= THROTTLE_OVERALL_LIMIT:
        return Refusal.THROTTLED_OVERALL
    return None


async def record_failure(repo: Repositories, messenger: str, user_id: int, now: datetime) -> None:
    await repo.links.purge_failures(messenger, user_id, now - THROTTLE_WINDOW)
    await repo.links.add_failure(messenger, user_id, now)


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
    repo: Repositories,
    account: Account,
    user: MessengerUser,
    *,
    token_id: int | None,
    now: datetime,
    vouched: bool = False,
) -> Linked | LinkRefused:
    """Spend the token (`token_id`; None when the caller already has) and bind a messenger
    user to an account, keeping both sides one-to-one within the messenger.

    The user's binding to another account is replaced, and their requests to move other
    accounts to them end. An account bound to another user of the same messenger is refused:
    only `allow_move`, with that user's permission, removes their binding first. An account
    bound in other messengers is refused unless the caller `vouched` for the person (an owner
    of one of those bindings allowed it, or the person signed in as the account's holder);
    those bindings stay. A first binding starts the person afresh (`start_afresh`).
    """
    mine = await repo.links.by_user(user.messenger, user.user_id)
    if mine is not None and mine.account_id == account.id:
        if token_id is not None and not await repo.links.use_token(token_id, now):
            return LinkRefused(Refusal.USED)
        return Linked(binding=mine, actor=actor_for(mine.account), already=True)
    role = default_role(account_roles(account))
    if role is None:
        return LinkRefused(Refusal.NO_ROLES)
    bound = await repo.links.of_account(account.id)
    if not vouched and any(other.messenger != user.messenger for other in bound):
        return LinkRefused(Refusal.ADD_BOUND_MEANWHILE)  # callers ask first; a race
    if token_id is not None and not await repo.links.use_token(token_id, now):
        return LinkRefused(Refusal.USED)
    if any(other.messenger == user.messenger for other in bound):  # callers check; a race
        return LinkRefused(Refusal.ACCOUNT_LINKED_ELSEWHERE)
    if mine is not None:
        await forget_binding(repo, mine)
    await repo.links.end_move_requests(user.messenger, user.user_id, now)
    await repo.outbox.drop_pending(channel=user.messenger, chat_id=user.chat_id, kind=UNLINKED_KIND)
    if not bound:
        start_afresh(account, role)
    binding = Binding(
        account_id=account.id,
        account=account,
        messenger=user.messenger,
        user_id=user.user_id,
        chat_id=user.chat_id,
        blocked=False,
        linked_at=now,
    )
    repo.session.add(binding)
    await repo.session.flush()
    return Linked(binding=binding, actor=actor_for(account))


async def forget_binding(repo: Repositories, binding: Binding) -> None:
    """Remove a binding with its chat's pushes and state (LinkRepo.remove); if it was the
    person's last, what the bot kept of the person goes too (role, consent, settings)."""
    account = binding.account
    await repo.links.remove(binding)
    if not await repo.links.of_account(account.id):
        forget_person(account)


def enqueue_to_chat(
    repo: Repositories,
    kind: str,
    *,
    messenger: str,
    chat_id: int,
    payload: dict[str, Any],
    now: datetime,
    account_id: int | None = None,
) -> None:
    """A linking message for one messenger chat, through the outbox (sent after the commit,
    in order)."""
    repo.outbox.add(
        **new_row(messenger, kind, now=now, account_id=account_id, chat_id=chat_id, payload=payload)
    )


async def unlink_account(
    repo: Repositories,
    account_id: int,
    *,
    clock: Clock,
    tell: UnlinkReason | None = UnlinkReason.REVOKED,
    messenger: str | None = None,
) -> list[Binding]:
    """Remove the account's binding in one messenger (None: every binding) with the chat's
    pending pushes and state; the removed bindings are returned. Unused tokens of the account
    tied to that messenger (offered to one of its users) and of its removed users are revoked
    too, and the requests they carried end: whoever asked from that messenger, or waits for
    the permission of a removed binding's owner (to move the account there, or to add a
    binding beside it), is told that a new link is needed. While the account stays bound in
    another messenger, a portal link not redeemed yet and the requests of other messengers
    stand (they still ask before binding); once it is bound nowhere, every unused token of the
    account goes (any would bind at once).

    `tell`: the reason each chat is told through the outbox, or None when the person is told
    directly (their own /logout).
    """
    now = clock.now()
    bound = await repo.links.of_account(account_id)
    removed = [b for b in bound if messenger is None or b.messenger == messenger]
    # Left bound elsewhere, the account's other links still ask before binding; left unbound,
    # any of them would bind at once: then they all go.
    only = messenger if len(removed) < len(bound) else None
    for request in await repo.links.move_requests(account_id=account_id):
        if request.chat_id is None or request.messenger is None:
            continue
        deciders, adding = await request_deciders(repo, request)
        if (
            only is not None
            and request.messenger != only
            and all(decider.messenger != only for decider in deciders)
        ):
            continue  # neither asked in that messenger nor waiting for it: it stands
        await _close_request(repo, request, MoveOutcome.RELEASED, now, adding=adding)
    await repo.links.delete_unused_tokens(account_id=account_id, messenger=only)
    for binding in removed:
        await repo.links.delete_unused_tokens(user=(binding.messenger, binding.user_id))
        await forget_binding(repo, binding)
        if tell is not None and not binding.blocked:
            enqueue_to_chat(
                repo,
                UNLINKED_KIND,
                messenger=binding.messenger,
                chat_id=binding.chat_id,
                payload={"reason": tell.value},
                now=now,
            )
    return removed


# -- portal first ----------------------------------------------------------------------------


async def mint_portal_token(
    repo: Repositories, account_id: int, *, ttl: timedelta, clock: Clock
) -> MintedToken:
    """A portal-first token for an account, shown by the web module as a messenger's deep
    link; whichever messenger redeems it is bound."""
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
    repo: Repositories, token: str, user: MessengerUser, *, clock: Clock
) -> RedeemOutcome:
    """The deep link's start payload: bind, or ask to switch accounts, or ask the account's
    bound owner in this messenger for permission to move it here, or say why not.

    A throttled user's attempts are not even looked at; every refusal of the token counts.
    """
    now = clock.now()
    throttled = await throttle_refusal(repo, user.messenger, user.user_id, now)
    if throttled is not None:
        return LinkRefused(throttled)
    row = None
    if is_well_formed(token):
        row = await repo.links.token_by_hash(token_hash(token), "portal")
        refusal = token_refusal(row, now)
    else:
        refusal = Refusal.MALFORMED
    if row is not None and row.move_requested_at is not None and refusal is None:
        if is_offered_to(row, user):  # the same link again: still waiting
            return await _still_waiting(repo, row)
        refusal = Refusal.USED  # redeemed by someone else, who waits for the owner
    if refusal is not None or row is None or row.account_id is None:
        await record_failure(repo, user.messenger, user.user_id, now)
        return LinkRefused(refusal or Refusal.UNKNOWN)
    account = await repo.accounts.get(row.account_id)
    if account is None:
        return LinkRefused(Refusal.UNKNOWN)
    mine = await repo.links.by_user(user.messenger, user.user_id)
    if mine is None or mine.account_id != account.id:
        theirs = await repo.links.by_account(account.id, user.messenger)
        if theirs is not None:
            return await _request_move(repo, row, account, theirs, mine, user, now)
        elsewhere = await repo.links.of_account(account.id)
        if elsewhere:
            return await _request_add(repo, row, account, elsewhere, mine, user, now)
    if mine is not None and mine.account_id != account.id:
        if not await repo.links.offer_token(
            row.id, messenger=user.messenger, user_id=user.user_id, chat_id=user.chat_id
        ):
            return LinkRefused(Refusal.USED)
        return SwitchNeeded(
            token_id=row.id, current_name=mine.account.full_name, target_name=account.full_name
        )
    return await bind(repo, account, user, token_id=row.id, now=now)


def is_offered_to(row: LinkToken, user: MessengerUser) -> bool:
    """Whether a token's open question is about this messenger user."""
    return row.messenger == user.messenger and row.user_id == user.user_id


async def _still_waiting(repo: Repositories, row: LinkToken) -> MoveRequested:
    """The asker opened the link of their open request again."""
    deciders, adding = await request_deciders(repo, row)
    asked = tuple(sorted({b.messenger for b in deciders if not b.blocked})) if adding else ()
    return MoveRequested(expires_at=row.expires_at, adding=adding, asked_in=asked)


async def _claim_for_request(
    repo: Repositories,
    row: LinkToken,
    account: Account,
    owners: list[Binding],
    user: MessengerUser,
    now: datetime,
) -> bool:
    """Make the token the asker's alone and ask each of `owners` in their chat; False if
    someone else claimed it a moment ago."""
    claimed = await repo.links.offer_token(
        row.id,
        messenger=user.messenger,
        user_id=user.user_id,
        chat_id=user.chat_id,
        username=user.username,
        move_requested_at=now,
    )
    if not claimed:
        return False
    for owner in owners:
        enqueue_to_chat(
            repo,
            MOVE_REQUEST_KIND,
            messenger=owner.messenger,
            chat_id=owner.chat_id,
            payload={"token": row.id},
            now=now,
            account_id=account.id,
        )
    return True


async def _request_add(
    repo: Repositories,
    row: LinkToken,
    account: Account,
    elsewhere: list[Binding],
    mine: Binding | None,
    user: MessengerUser,
    now: datetime,
) -> MoveRequested | LinkRefused:
    """The account is bound in other messengers only: a binding in this one is added only
    with the permission of an owner of one of those, asked in their chats (each that has not
    blocked the bot; the first answer counts). Nothing is bound yet, pushes stay where they
    go; the token becomes this user's alone."""
    if mine is not None:
        return LinkRefused(Refusal.ADD_LOGOUT_FIRST)
    if not account_roles(account):
        return LinkRefused(Refusal.NO_ROLES)
    reachable = [binding for binding in elsewhere if not binding.blocked]
    if not reachable:
        blocked = tuple(sorted({binding.messenger for binding in elsewhere}))
        return LinkRefused(Refusal.ADD_OWNERS_BLOCKED, elsewhere=blocked)
    if not await _claim_for_request(repo, row, account, reachable, user, now):
        return LinkRefused(Refusal.USED)
    asked = tuple(sorted({binding.messenger for binding in reachable}))
    return MoveRequested(expires_at=row.expires_at, adding=True, asked_in=asked)


async def _request_move(
    repo: Repositories,
    row: LinkToken,
    account: Account,
    owner: Binding,
    mine: Binding | None,
    user: MessengerUser,
    now: datetime,
) -> MoveRequested | LinkRefused:
    """The account is bound to another user of this messenger: ask them in their chat, if
    they can be asked. Nothing moves yet; the token becomes this user's alone."""
    if mine is not None:
        return LinkRefused(Refusal.LOGOUT_FIRST)
    if not account_roles(account):
        return LinkRefused(Refusal.NO_ROLES)
    if owner.blocked:
        return LinkRefused(Refusal.OWNER_BLOCKED)
    if not await _claim_for_request(repo, row, account, [owner], user, now):
        return LinkRefused(Refusal.USED)
    return MoveRequested(expires_at=row.expires_at)


async def confirm_switch(
    repo: Repositories, token_id: int, user: MessengerUser, *, clock: Clock
) -> Linked | LinkRefused:
    """The messenger user agreed to leave their account for the token's one."""
    now = clock.now()
    row = await repo.links.token_by_id(token_id)
    if (
        row is None
        or row.kind != "portal"
        or not is_offered_to(row, user)
        or row.move_requested_at is not None
    ):
        return LinkRefused(Refusal.UNKNOWN)
    refusal = token_refusal(row, now)
    if refusal is not None or row.account_id is None:
        return LinkRefused(refusal or Refusal.UNKNOWN)
    account = await repo.accounts.get(row.account_id)
    if account is None:
        return LinkRefused(Refusal.UNKNOWN)
    theirs = await repo.links.by_account(account.id, user.messenger)
    if theirs is not None and theirs.user_id != user.user_id:
        return LinkRefused(Refusal.LOGOUT_FIRST)  # bound to someone else since the question
    if theirs is None and await repo.links.of_account(account.id):
        return LinkRefused(Refusal.ADD_LOGOUT_FIRST)  # bound in another messenger since
    return await bind(repo, account, user, token_id=row.id, now=now)


async def cancel_switch(repo: Repositories, token_id: int, user: MessengerUser) -> None:
    """The messenger user keeps their account; the token stays valid until it expires."""
    await repo.links.withdraw_offer(token_id, messenger=user.messenger, user_id=user.user_id)


# -- moving an account to another user of the messenger: the bound owner decides -------------


async def move_request(repo: Repositories, token_id: int) -> LinkToken | None:
    """The open move request of a token: claimed, not used (whether or not expired)."""
    row = await repo.links.token_by_id(token_id)
    if (
        row is None
        or row.kind != "portal"
        or row.move_requested_at is None
        or row.used_at is not None
        or row.account_id is None
        or row.messenger is None
        or row.user_id is None
        or row.chat_id is None
    ):
        return None
    return row


def requester_of(row: LinkToken) -> MessengerAccount:
    assert row.messenger is not None
    assert row.user_id is not None
    return MessengerAccount(row.messenger, row.user_id, row.username)


async def request_deciders(repo: Repositories, row: LinkToken) -> tuple[list[Binding], bool]:
    """Whose answer an open request waits for, and whether it adds a binding.

    A move: the account's binding in the request's messenger, whose owner would lose it. An
    add (the account is not bound in that messenger): its bindings in the other messengers.
    Decided by the bindings as they are now, so a press from a binding that moved or went
    since counts for nothing.
    """
    if row.account_id is None or row.messenger is None:
        return [], False
    same = await repo.links.by_account(row.account_id, row.messenger)
    if same is not None:
        return [same], False
    return await repo.links.of_account(row.account_id), True


async def _owners_request(
    repo: Repositories, token_id: int, owner: MessengerUser, now: datetime
) -> tuple[LinkToken, Binding, bool] | LinkRefused:
    """The open request, the answering owner's binding and whether the request adds a
    binding, if the one who answers is one whose answer it waits for (`request_deciders`).

    A press by anyone else (a forged button, a binding that has moved since) is UNKNOWN.
    An expired request is closed here, and the requester told.
    """
    row = await move_request(repo, token_id)
    if row is None:
        return LinkRefused(Refusal.UNKNOWN)
    deciders, adding = await request_deciders(repo, row)
    bound = next(
        (b for b in deciders if (b.messenger, b.user_id) == (owner.messenger, owner.user_id)),
        None,
    )
    if bound is None:
        return LinkRefused(Refusal.UNKNOWN)
    if row.expires_at <= now:
        await _close_request(repo, row, MoveOutcome.EXPIRED, now, adding=adding)
        return LinkRefused(Refusal.EXPIRED)
    return row, bound, adding


def outcome_payload(outcome: MoveOutcome, *, adding: bool, by: str | None = None) -> dict[str, Any]:
    """A move_outcome row's payload: the outcome; for an add, "adding" and the messenger of the
    owner who answered ("by"), which the asker's text names."""
    payload: dict[str, Any] = {"outcome": outcome.value}
    if adding:
        payload["adding"] = True
        if by is not None:
            payload["by"] = by
    return payload


async def _close_request(
    repo: Repositories,
    row: LinkToken,
    outcome: MoveOutcome,
    now: datetime,
    *,
    adding: bool,
    by: str | None = None,
) -> bool:
    """Spend the request's token and tell the requester the outcome; False if already spent."""
    requester = requester_of(row)
    chat_id = row.chat_id
    assert chat_id is not None
    if not await repo.links.use_token(row.id, now):
        return False
    if outcome is not MoveOutcome.ALLOWED:
        payload = outcome_payload(outcome, adding=adding, by=by)
        enqueue_to_chat(
            repo,
            MOVE_OUTCOME_KIND,
            messenger=requester.messenger,
            chat_id=chat_id,
            payload=payload,
            now=now,
        )
    log.info(
        "%s request %s: %s (%s user %s)",
        "add" if adding else "move",
        row.id,
        outcome.value,
        requester.messenger,
        requester.user_id,
    )
    return True


async def allow_move(
    repo: Repositories, token_id: int, owner: MessengerUser, *, clock: Clock
) -> MoveDecided | LinkRefused:
    """The owner allowed: for a move their binding goes and the requester's comes; for an add
    the requester's comes beside theirs. The requester hears it, with the consent if it is not
    accepted yet, through the outbox."""
    now = clock.now()
    found = await _owners_request(repo, token_id, owner, now)
    if isinstance(found, LinkRefused):
        return found
    row, bound, adding = found
    account = bound.account
    if not account_roles(account):
        return LinkRefused(Refusal.NO_ROLES)
    requester, chat_id = requester_of(row), row.chat_id
    assert chat_id is not None
    if not await _close_request(
        repo, row, MoveOutcome.ALLOWED, now, adding=adding, by=bound.messenger
    ):
        return LinkRefused(Refusal.USED)
    if not adding:
        await forget_binding(repo, bound)
    user = MessengerUser(requester.messenger, requester.user_id, chat_id, requester.username)
    linked = await bind(repo, account, user, token_id=None, now=now, vouched=True)
    if isinstance(linked, LinkRefused):  # checked above in this transaction: cannot happen
        raise RuntimeError(f"binding after the owner's permission refused: {linked.reason}")
    allowed = outcome_payload(MoveOutcome.ALLOWED, adding=adding, by=owner.messenger)
    for kind, payload in ((MOVE_OUTCOME_KIND, allowed), (CONSENT_KIND, {})):
        enqueue_to_chat(
            repo,
            kind,
            messenger=user.messenger,
            chat_id=chat_id,
            payload=payload,
            now=now,
            account_id=account.id,
        )
    return MoveDecided(requester=requester, linked=linked, adding=adding)


async def deny_move(
    repo: Repositories, token_id: int, owner: MessengerUser, *, clock: Clock
) -> MoveDecided | LinkRefused:
    """The bound owner refused: nothing moves, the link is spent, the requester is told."""
    now = clock.now()
    found = await _owners_request(repo, token_id, owner, now)
    if isinstance(found, LinkRefused):
        return found
    row, bound, adding = found
    requester = requester_of(row)
    denied = MoveOutcome.DENIED
    if not await _close_request(repo, row, denied, now, adding=adding, by=bound.messenger):
        return LinkRefused(Refusal.USED)
    return MoveDecided(requester=requester, linked=None, adding=adding)


async def expire_move_requests(repo: Repositories, now: datetime) -> int:
    """Close the move and add requests whose token has expired unanswered and tell each
    requester; returns how many. Safe in several processes at once: each is closed once."""
    closed = 0
    for row in await repo.links.expired_move_requests(now):
        _, adding = await request_deciders(repo, row)
        closed += await _close_request(repo, row, MoveOutcome.EXPIRED, now, adding=adding)
    return closed


async def move_requests_loop(
    session_factory: async_sessionmaker[AsyncSession],
    clock: Clock,
    stop: asyncio.Event,
    *,
    interval: float = MOVE_CHECK_INTERVAL,
    on_written: Callable[[], None] | None = None,
) -> None:
    """Every `interval` seconds, close the expired move requests, until `stop` is set."""

    async def expire() -> int:
        async with session_factory() as session:
            closed = await expire_move_requests(Repositories(session), clock.now())
            await session.commit()
        return closed

    await run_periodically(
        expire, stop, interval=interval, what="expiring move requests", on_written=on_written
    )


# -- bot first -------------------------------------------------------------------------------


async def mint_bot_token(
    repo: Repositories, user: MessengerUser, *, ttl: timedelta, clock: Clock
) -> MintedToken:
    """A bot-first token for a messenger user; their earlier unused ones are revoked."""
    await repo.links.delete_unused_tokens(user=(user.messenger, user.user_id))
    return await _mint(
        repo,
        kind="bot",
        ttl=ttl,
        clock=clock,
        messenger=user.messenger,
        user_id=user.user_id,
        chat_id=user.chat_id,
    )


def launch_refusal(problem: LaunchProblem) -> Refusal:
    """A sign-in page whose launch data vouches for nobody: not opened as the bot's mini app
    (an ordinary browser, a forwarded link), or opened too long ago."""
    return Refusal.LAUNCH_STALE if problem is LaunchProblem.STALE else Refusal.NOT_LAUNCHED


async def open_sign_in(
    repo: Repositories, token: str, launch: LaunchUser, *, clock: Clock
) -> LinkToken | Refusal:
    """The bot-first token behind a sign-in page, if the page may start a sign-in with it.

    The launch data must name the messenger user the token was made for (a link opened by
    anyone else is refused) and be newer than the token and than the launch that started the
    last sign-in. Refusals of the token count toward the launching user's throttle, as in
    `/start`.
    """
    now = clock.now()
    throttled = await throttle_refusal(repo, launch.messenger, launch.user_id, now)
    if throttled is not None:
        return throttled
    row = None
    if is_well_formed(token):
        row = await repo.links.token_by_hash(token_hash(token), "bot")
        refusal = token_refusal(row, now)
    else:
        refusal = Refusal.MALFORMED
    if (
        refusal is None
        and row is not None
        and (row.messenger, row.user_id)
        != (
            launch.messenger,
            launch.user_id,
        )
    ):
        refusal = Refusal.OTHER_TELEGRAM_USER
    if refusal is not None or row is None:
        await record_failure(repo, launch.messenger, launch.user_id, now)
        return refusal or Refusal.UNKNOWN
    if launch.signed_at < row.created_at - CLOCK_SKEW or (
        row.launched_at is not None and launch.signed_at <= row.launched_at
    ):
        return Refusal.LAUNCH_STALE
    return row


def begin_sign_in(
    row: LinkToken,
    *,
    launch: LaunchUser,
    state: str,
    nonce: str,
    code_verifier: str,
    browser_key: str,
) -> None:
    """Remember an OpenID Connect sign-in started for the token (a new one replaces it)."""
    row.launched_at = launch.signed_at
    row.username = launch.username
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
    """Why a bot-first sign-in may not bind this account to the token's messenger user.

    A bot-first sign-in never takes an account away from another user of the messenger (a
    portal-first link asks that user), nor the messenger user away from another account.
    """
    if not account_roles(account):
        return LinkRefused(Refusal.NO_ROLES)
    if row.messenger is None or row.user_id is None:
        return LinkRefused(Refusal.NO_ACCOUNT)
    theirs = await repo.links.by_account(account.id, row.messenger)
    if theirs is not None and theirs.user_id != row.user_id:
        return LinkRefused(Refusal.ACCOUNT_LINKED_ELSEWHERE)
    mine = await repo.links.by_user(row.messenger, row.user_id)
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
    account = await repo.accounts.get(row.account_id) if row.account_id is not None else None
    if account is None or row.messenger is None or row.user_id is None or row.chat_id is None:
        return LinkRefused(Refusal.NO_ACCOUNT)
    refused = await binding_refusal(repo, row, account)
    if refused is not None:
        return refused
    user = MessengerUser(row.messenger, row.user_id, row.chat_id, row.username)
    # The person signed in as the account's holder: a binding beside their others is theirs.
    return await bind(repo, account, user, token_id=row.id, now=clock.now(), vouched=True)


async def end_sign_in(repo: Repositories, row: LinkToken, *, clock: Clock) -> None:
    """The sign-in was cancelled or failed for good: the token cannot be used again."""
    await repo.links.use_token(row.id, clock.now())
