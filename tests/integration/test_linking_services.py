"""services.linking without the messenger: token strength and storage, one winner of concurrent
redemptions, account matching by ESIA oid and SNILS hash, roles."""

from __future__ import annotations

import asyncio
import base64
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.settings import SettingsError, load_settings
from services.clock import ManualClock
from services.domain import Role
from services.linking import (
    MOVE_REQUEST_KIND,
    TOKEN_PATTERN,
    Linked,
    LinkRefused,
    MessengerUser,
    MoveRequested,
    RedeemOutcome,
    Refusal,
    actor_for,
    default_role,
    match_account,
    mint_portal_token,
    new_token,
    normalize_snils,
    redeem_portal_token,
    snils_hash,
)
from storage.models import AccountRole, Binding, LinkToken, OutboxMessage
from storage.repositories import Repositories
from tests.linking_support import (
    FULLWIDTH_SNILS,
    NEW_DIRECTOR,
    NEW_DIRECTOR_OID,
    NEW_DIRECTOR_SNILS,
    SNILS_KEY,
    add_new_accounts,
    mint,
)

pytestmark = pytest.mark.usefixtures("seeded")


@pytest.fixture(autouse=True)
async def new_accounts(seeded: None, session_factory: async_sessionmaker[AsyncSession]) -> None:
    await add_new_accounts(session_factory)


def test_tokens_carry_192_random_bits_within_the_start_payload() -> None:
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    for token in tokens:
        assert TOKEN_PATTERN.fullmatch(token)
        assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) * 8 == 192
        assert len(token) <= 64


async def test_only_the_hash_of_a_token_is_stored(
    session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    async with session_factory() as session:
        minted = await mint_portal_token(
            Repositories(session), NEW_DIRECTOR, ttl=timedelta(minutes=10), clock=clock
        )
        await session.commit()
        rows = (await session.execute(text("SELECT * FROM link_tokens"))).all()
    assert len(rows) == 1
    assert minted.token not in repr(rows)
    assert minted.expires_at == clock.now() + timedelta(minutes=10)


async def redeemed_at_once(
    session_factory: async_sessionmaker[AsyncSession], token: str, clock: ManualClock
) -> list[RedeemOutcome]:
    """The link redeemed by six Telegram users (3000 to 3005, @user3000…) at the same moment,
    each in a transaction of their own; their outcomes, in that order."""
    start = asyncio.Event()

    async def redeem(user_id: int) -> RedeemOutcome:
        async with session_factory() as session:
            await start.wait()
            outcome = await redeem_portal_token(
                Repositories(session),
                token,
                MessengerUser("telegram", user_id, user_id, f"user{user_id}"),
                clock=clock,
            )
            await session.commit()
            return outcome

    tasks = [asyncio.create_task(redeem(3000 + i)) for i in range(6)]
    await asyncio.sleep(0.05)
    start.set()
    return await asyncio.gather(*tasks)


async def test_concurrent_redemptions_of_one_token_have_one_winner(
    session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    token = await mint(session_factory, NEW_DIRECTOR, clock)
    outcomes = await redeemed_at_once(session_factory, token, clock)
    winners = [o for o in outcomes if isinstance(o, Linked)]
    assert len(winners) == 1
    assert all(o == LinkRefused(Refusal.USED) for o in outcomes if not isinstance(o, Linked))
    async with session_factory() as session:
        links = list(
            await session.scalars(select(Binding).where(Binding.account_id == NEW_DIRECTOR))
        )
    assert [link.user_id for link in links] == [winners[0].binding.user_id]


async def test_concurrent_requests_to_move_a_bound_account_have_one_winner(
    session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    """Whoever the owner is asked about is the one who is bound if they allow: two holders of
    a leaked link of a bound account, at once, get one question to the owner, about one."""
    token = await mint(session_factory, 3, clock)  # account 3 is bound to Telegram user 1003
    outcomes = await redeemed_at_once(session_factory, token, clock)
    assert len([o for o in outcomes if isinstance(o, MoveRequested)]) == 1
    assert all(o == LinkRefused(Refusal.USED) for o in outcomes if not isinstance(o, MoveRequested))
    async with session_factory() as session:
        [row] = await session.scalars(select(LinkToken))
        questions = list(
            await session.scalars(
                select(OutboxMessage).where(OutboxMessage.kind == MOVE_REQUEST_KIND)
            )
        )
    winner = outcomes.index(next(o for o in outcomes if isinstance(o, MoveRequested)))
    assert (row.user_id, row.username) == (3000 + winner, f"user{3000 + winner}")
    assert [(q.chat_id, q.payload) for q in questions] == [(1003, {"token": row.id})]


async def test_accounts_are_matched_by_esia_oid_else_by_snils_hash(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    async with session_factory() as session:
        repo = Repositories(session)

        async def match(claims: dict[str, object], key: str | None = SNILS_KEY) -> int | None:
            account = await match_account(
                repo, claims, oid_claim="esia_oid", snils_claim="snils", snils_key=key
            )
            return None if account is None else account.id

        assert await match({"esia_oid": NEW_DIRECTOR_OID}) == NEW_DIRECTOR
        assert await match({"esia_oid": int(NEW_DIRECTOR_OID)}) == NEW_DIRECTOR
        assert await match({"snils": "11223344595"}) == NEW_DIRECTOR
        assert await match({"esia_oid": "other", "snils": NEW_DIRECTOR_SNILS}) == NEW_DIRECTOR
        assert await match({"esia_oid": "other", "snils": "123"}) is None
        assert await match({"snils": FULLWIDTH_SNILS}) is None  # not read as 11223344595
        assert await match({"snils": NEW_DIRECTOR_SNILS}, key=None) is None
        assert await match({"snils": NEW_DIRECTOR_SNILS}, key="another-key") is None
        assert await match({"esia_oid": True}) is None
        assert await match({}) is None
    assert snils_hash("112 233 445 95", SNILS_KEY) == snils_hash("11223344595", SNILS_KEY)
    with pytest.raises(ValueError, match="not a SNILS"):
        snils_hash("1234", SNILS_KEY)


ARABIC_INDIC_SNILS = "١١٢-٢٣٣-٤٤٥ ٩٥"


def test_a_snils_is_ascii_digits_only() -> None:
    assert normalize_snils("112-233-445 95") == "11223344595"
    assert normalize_snils("112 233 445\t95") == "11223344595"
    for spelled in (FULLWIDTH_SNILS, ARABIC_INDIC_SNILS, "１1223344595"):
        assert normalize_snils(spelled) is None
        with pytest.raises(ValueError, match="not a SNILS"):
            snils_hash(spelled, SNILS_KEY)


async def test_roles_start_with_the_busiest_and_follow_the_web_module(
    session_factory: async_sessionmaker[AsyncSession],
) -> None:
    assert default_role(frozenset({Role.LISTENER, Role.DIRECTOR})) is Role.DIRECTOR
    assert default_role(frozenset({Role.LISTENER, Role.STAFF})) is Role.STAFF
    assert default_role(frozenset()) is None
    async with session_factory() as session:
        link = await Repositories(session).links.by_user("telegram", 1001)
        assert link is not None
        assert actor_for(link.account).role is Role.DIRECTOR
        # The web module takes the director's role away: the remaining role is active.
        link.account.roles = [AccountRole(role="listener")]
        await session.flush()
        assert actor_for(link.account).role is Role.LISTENER
        assert actor_for(link.account).roles == frozenset({Role.LISTENER})


def test_link_tokens_live_ten_minutes_by_default_and_at_most_a_day(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env of a developer's checkout
    monkeypatch.delenv("LINK_TOKEN_TTL", raising=False)
    assert load_settings(require_bot_token=False).LINK_TOKEN_TTL == 600
    assert load_settings(require_bot_token=False, LINK_TOKEN_TTL=86400).LINK_TOKEN_TTL == 86400
    for wrong in (86401, 59):
        with pytest.raises(SettingsError) as refused:
            load_settings(require_bot_token=False, LINK_TOKEN_TTL=wrong)
        assert refused.value.lines == [
            "Ошибка настройки: LINK_TOKEN_TTL задана неверно — целое число секунд от 60 до 86400 "
            "(сутки), например 600"
        ]
