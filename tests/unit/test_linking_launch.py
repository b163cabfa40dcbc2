"""Mini App launch data (services/launch.py): what a Telegram client puts in the fragment,
signed with the bot token, is accepted for its user and nothing else is.

The data is made by the Bot API double (`FakeBotAPI.launch_fragment`, following Telegram's
documentation) and checked against aiogram's own implementation of the same check
(`aiogram.utils.web_app.check_webapp_signature`), so the verifier and the double cannot share a
mistake unnoticed."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, parse_qsl, quote, urlencode

import pytest
from aiogram.utils.web_app import check_webapp_signature

from services.launch import (
    CLOCK_SKEW,
    FRAGMENT_LIMIT,
    LAUNCH_MAX_AGE,
    LaunchProblem,
    LaunchUser,
    SignedLaunchVerifier,
)
from tests.fakes.bot_api import FakeBotAPI

TOKEN = "123456:TEST"
NOW = datetime(2026, 9, 1, 6, 0, tzinfo=UTC)
VERIFIER = SignedLaunchVerifier(
    messenger="telegram", fragment_field="tgWebAppData", bot_token=TOKEN
)


@pytest.fixture
def api() -> FakeBotAPI:
    api = FakeBotAPI(token=TOKEN)
    api.add_user(2000, first_name="Незнакомец")
    api.add_user(2001, first_name="Морозов Игорь Викторович", username="helper_2001")
    return api


def fragment_of(api: FakeBotAPI, user_id: int, signed_at: datetime = NOW) -> str:
    return api.launch_fragment(user_id, auth_date=int(signed_at.timestamp()))


def init_data(fragment: str) -> str:
    return parse_qs(fragment)["tgWebAppData"][0]


def resigned(fields: dict[str, str], token: str = TOKEN) -> str:
    """Launch data with these fields, signed as Telegram signs (written out here once more)."""
    fields = {key: value for key, value in fields.items() if key != "hash"}
    check = "\n".join(f"{key}={value}" for key, value in sorted(fields.items()))
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    fields["hash"] = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    return urlencode({"tgWebAppData": urlencode(fields, quote_via=quote)}, quote_via=quote)


def test_a_telegram_launch_names_its_user(api: FakeBotAPI) -> None:
    fragment = fragment_of(api, 2001)
    assert check_webapp_signature(TOKEN, init_data(fragment))  # aiogram agrees with the double
    assert VERIFIER.verify(fragment, NOW) == LaunchUser("telegram", 2001, "helper_2001", NOW)
    assert VERIFIER.verify("#" + fragment, NOW + LAUNCH_MAX_AGE) == LaunchUser(
        "telegram", 2001, "helper_2001", NOW
    )
    without_username = VERIFIER.verify(fragment_of(api, 2000), NOW)
    assert without_username == LaunchUser("telegram", 2000, None, NOW)
    # The field `signature` (Telegram's Ed25519 one for third parties) is part of what the
    # hash covers: data that drops it no longer checks.
    fields = dict(parse_qsl(init_data(fragment)))
    assert "signature" in fields
    del fields["signature"]
    dropped = urlencode({"tgWebAppData": urlencode(fields, quote_via=quote)}, quote_via=quote)
    assert VERIFIER.verify(dropped, NOW) is LaunchProblem.INVALID


def test_no_launch_data_is_missing() -> None:
    for fragment in ("", "#", "tgWebAppVersion=8.0&tgWebAppPlatform=android", "tgWebAppData="):
        assert VERIFIER.verify(fragment, NOW) is LaunchProblem.MISSING


def test_altered_or_foreign_launch_data_is_invalid(api: FakeBotAPI) -> None:
    fragment = fragment_of(api, 2001)
    fields = dict(parse_qsl(init_data(fragment)))
    other_user = fields["user"].replace('"id":2001', '"id":2000')
    assert other_user != fields["user"]
    altered = fragment.replace(quote(quote(fields["user"], safe=""), safe=""), "")
    cases = {
        "another user put in": urlencode(
            {"tgWebAppData": urlencode(fields | {"user": other_user}, quote_via=quote)},
            quote_via=quote,
        ),
        "user removed": altered,
        "signed with another bot's token": resigned(fields, token="654321:OTHER"),
        "no hash": resigned(fields).replace("%26hash%3D", "%26hush%3D"),
        "a field twice": fragment.replace("auth_date%3D", "auth_date%3D1%26auth_date%3D", 1),
        "given twice": f"{fragment}&tgWebAppData=x",
        "not a query string": "tgWebAppData=%3D%3D%26%26",
        "too long": fragment + "&x=" + "y" * FRAGMENT_LIMIT,
    }
    for case, value in cases.items():
        assert VERIFIER.verify(value, NOW) is LaunchProblem.INVALID, case
    # Well signed but unusable: the user or the time is not what Telegram sends.
    for user in ("not json", "[2001]", '{"id":true}', '{"id":"2001"}', '{"id":0}', "{}"):
        assert VERIFIER.verify(resigned(fields | {"user": user}), NOW) is LaunchProblem.INVALID
    for auth_date in ("", "-1", "1e9", "１７００"):
        signed = resigned(fields | {"auth_date": auth_date})
        assert VERIFIER.verify(signed, NOW) is LaunchProblem.INVALID, auth_date
    assert VERIFIER.verify(resigned(fields), NOW) == LaunchUser(
        "telegram", 2001, "helper_2001", NOW
    )


def test_old_or_future_launch_data_is_stale(api: FakeBotAPI) -> None:
    second = timedelta(seconds=1)
    oldest = fragment_of(api, 2001, NOW - LAUNCH_MAX_AGE)
    assert isinstance(VERIFIER.verify(oldest, NOW), LaunchUser)
    old = fragment_of(api, 2001, NOW - LAUNCH_MAX_AGE - second)
    assert VERIFIER.verify(old, NOW) is LaunchProblem.STALE
    ahead = fragment_of(api, 2001, NOW + CLOCK_SKEW)
    assert isinstance(VERIFIER.verify(ahead, NOW), LaunchUser)
    future = fragment_of(api, 2001, NOW + CLOCK_SKEW + second)
    assert VERIFIER.verify(future, NOW) is LaunchProblem.STALE


def test_the_verifier_knows_no_messenger_but_its_field_and_token(api: FakeBotAPI) -> None:
    """Another messenger's mini app signed the same way, under its own field name (MAX is to
    come): the same verifier, made with that field and that bot's token."""
    fields = dict(parse_qsl(init_data(fragment_of(api, 2001))))
    other = SignedLaunchVerifier(messenger="max", fragment_field="WebAppData", bot_token="max-t")
    data = parse_qs(resigned(fields, token="max-t"))["tgWebAppData"][0]
    fragment = urlencode({"WebAppData": data}, quote_via=quote)
    assert other.verify(fragment, NOW) == LaunchUser("max", 2001, "helper_2001", NOW)
    assert VERIFIER.verify(fragment, NOW) is LaunchProblem.MISSING
    assert "max-t" not in repr(other)  # the token is kept out of reprs (and so of logs)
    assert json.loads(fields["user"])["first_name"] == "Морозов Игорь Викторович"
