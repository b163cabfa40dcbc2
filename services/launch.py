"""Mini-app launch data: the messenger's word that a page was opened inside it, by whom.

A messenger opens a mini app (a Telegram Mini App now; a MAX mini app later) at the app's URL
with launch data in the fragment, signed with the bot's token. The data is a query string: the
user (JSON), `auth_date` (Unix seconds) and other fields, and `hash`, the hex HMAC-SHA256 of
the data-check string (every other field as `key=value`, sorted by key, joined by newlines)
under the secret key HMAC-SHA256(key="WebAppData", msg=<bot token>). That is Telegram's
documented algorithm ("Validating data received via the Mini App").

The page forwards its fragment as it is; a `LaunchVerifier` finds its messenger's field in it,
checks the signature and the age and returns the user the messenger vouches for, or the
problem. Nothing here knows a messenger's library: a front end makes the verifier with its bot
token and the name of its field (Telegram: `tgWebAppData`). Only the holder of the bot token
can sign, so a page opened in an ordinary browser, or by another messenger user, cannot pass
for the user who asked for the link.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Protocol
from urllib.parse import parse_qs, parse_qsl

# The page submits its data at once; an older signature is someone's old page (or a replay).
LAUNCH_MAX_AGE = timedelta(minutes=2)
CLOCK_SKEW = timedelta(minutes=1)  # how far the messenger's clock may run ahead of ours
FRAGMENT_LIMIT = 8192  # characters; launch data is well under 2 KB


class LaunchProblem(StrEnum):
    """Why launch data does not vouch for a user."""

    MISSING = "missing"  # no launch data: not opened as a mini app
    INVALID = "invalid"  # malformed, or not signed with this bot's token
    STALE = "stale"  # signed too long ago, or in the future


@dataclass(frozen=True)
class LaunchUser:
    """The messenger user a page was opened by, as the signed launch data says."""

    messenger: str
    user_id: int
    username: str | None
    signed_at: datetime


class LaunchVerifier(Protocol):
    def verify(self, fragment: str, now: datetime) -> LaunchUser | LaunchProblem:
        """The user behind the page's URL fragment, or why it does not name one."""
        ...


def webapp_secret(bot_token: str) -> bytes:
    return hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()


def data_check_string(fields: dict[str, str]) -> str:
    return "\n".join(f"{key}={value}" for key, value in sorted(fields.items()))


@dataclass(frozen=True)
class SignedLaunchVerifier:
    """Launch data in `fragment_field` of the fragment, signed with `bot_token` as above."""

    messenger: str
    fragment_field: str
    bot_token: str = field(repr=False)
    max_age: timedelta = LAUNCH_MAX_AGE

    def verify(self, fragment: str, now: datetime) -> LaunchUser | LaunchProblem:
        if len(fragment) > FRAGMENT_LIMIT:
            return LaunchProblem.INVALID
        found = parse_qs(fragment.removeprefix("#"), keep_blank_values=True).get(
            self.fragment_field, []
        )
        if not found or not found[0]:
            return LaunchProblem.MISSING
        fields = _fields(found[0]) if len(found) == 1 else None
        if fields is None or not self._signed(fields):
            return LaunchProblem.INVALID
        user = _user(fields)
        signed_at = _signed_at(fields)
        if user is None or signed_at is None:
            return LaunchProblem.INVALID
        if not now - self.max_age <= signed_at <= now + CLOCK_SKEW:
            return LaunchProblem.STALE
        user_id, username = user
        return LaunchUser(self.messenger, user_id, username, signed_at)

    def _signed(self, fields: dict[str, str]) -> bool:
        received = fields.pop("hash", None)
        if received is None:
            return False
        expected = hmac.new(
            webapp_secret(self.bot_token), data_check_string(fields).encode(), hashlib.sha256
        ).hexdigest()
        return hmac.compare_digest(expected, received)


def _fields(data: str) -> dict[str, str] | None:
    """The fields of the launch data; None if malformed or a field is repeated."""
    try:
        pairs = parse_qsl(data, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        return None
    fields = dict(pairs)
    return fields if len(fields) == len(pairs) else None


def _user(fields: dict[str, str]) -> tuple[int, str | None] | None:
    try:
        user = json.loads(fields.get("user", ""))
    except ValueError:
        return None
    if not isinstance(user, dict):
        return None
    user_id, username = user.get("id"), user.get("username")
    if not isinstance(user_id, int) or isinstance(user_id, bool) or user_id <= 0:
        return None
    if not isinstance(username, str) or not username:
        username = None
    return user_id, username


def _signed_at(fields: dict[str, str]) -> datetime | None:
    value = fields.get("auth_date", "")
    if not value.isascii() or not value.isdigit() or len(value) > 12:
        return None
    return datetime.fromtimestamp(int(value), UTC)
