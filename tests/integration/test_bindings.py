"""Bindings per messenger: a person bound in Telegram and MAX is one person (consent, role,
settings on the account), the runner finds the sender's binding by (messenger, user id), a push
goes where the person chose, history names the messenger a decision came from, and a link token
binds whichever messenger redeems it. Messenger-neutral: no front end, the runner is fed
directly."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.conversation.effects import Effect, Show
from bot.conversation.intents import AppAction, AppIntent, StatusCode
from bot.conversation.receipts import Handling
from bot.conversation.runner import Runner
from bot.conversation.turn import Command, Incoming, Peer, Press, Reachable
from bot.screens.applications import history_entry
from bot.settings import Settings
from services.clock import ManualClock
from services.linking import (
    Linked,
    MessengerUser,
    MoveDecided,
    MoveRequested,
    allow_move,
    mint_portal_token,
    redeem_portal_token,
)
from services.notifications import NotificationKind, enqueue_pushes
from services.views import event_view
from storage.models import Account, ApplicationEvent, Binding, OutboxMessage
from storage.repositories import Repositories, pushed_to
from tests import factories
from tests.director_data import NEWEST_NEW, seed_applications

MAX_DIRECTOR = 5001  # account 1 in MAX; its dialog with the bot is chat 7001
MAX_CHAT = 7001

pytestmark = pytest.mark.usefixtures("seeded")


@dataclass
class Recorder:
    """A front end's executor that only remembers what it was asked to do."""

    effects: list[Effect] = field(default_factory=list)

    async def execute(self, effects: list[Effect]) -> None:
        self.effects += effects

    def texts(self) -> list[str]:
        return [effect.screen.text for effect in self.effects if isinstance(effect, Show)]


def max_peer(user_id: int = MAX_DIRECTOR, chat_id: int = MAX_CHAT) -> Peer:
    return Peer(messenger="max", user_id=user_id, chat_id=chat_id, name="Пётр", bot_id=77)


@pytest.fixture
def runner(
    database_url: str, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> Runner:
    settings = Settings(_env_file=None, DATABASE_URL=database_url)  # type: ignore[call-arg]
    return Runner(session_factory, settings, clock)


async def bind_in_max(session_factory: async_sessionmaker[AsyncSession]) -> None:
    await factories.store(
        session_factory, factories.binding(1, MAX_DIRECTOR, messenger="max", chat_id=MAX_CHAT)
    )


async def test_a_person_bound_in_both_messengers_decides_in_max(
    runner: Runner, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await seed_applications(session_factory)
    await bind_in_max(session_factory)
    pressed = AppIntent(AppAction.APPROVE_NO_COMMENT, NEWEST_NEW, status=StatusCode.NEW)
    recorder = Recorder()
    receipt = await runner.run(
        Incoming(max_peer(), Press(pressed.pack(), "mid.1"), update_id="cb.1"), recorder
    )
    assert receipt.outcome is Handling.HANDLED
    assert any(f"Заявка №{NEWEST_NEW} одобрена" in text for text in recorder.texts())
    async with session_factory() as session:
        [event] = await session.scalars(
            select(ApplicationEvent).where(ApplicationEvent.action == "approve")
        )
        pushes = list(await session.scalars(select(OutboxMessage)))
    # The same person as in Telegram (consent, role), and history says where they decided.
    assert (event.actor_account_id, event.source) == (1, "max")
    assert "Источник: MAX" in history_entry(event_view(event), "Петров", "", runner.settings.zone)
    # The applicant is bound in Telegram only: their push goes there.
    assert [(row.channel, row.account_id, row.chat_id) for row in pushes] == [("telegram", 3, 1003)]
    # The same MAX update delivered again is handled once.
    again = await runner.run(
        Incoming(max_peer(), Press(pressed.pack(), "mid.1"), update_id="cb.1"), Recorder()
    )
    assert again.outcome is Handling.DUPLICATE


async def test_the_sender_is_found_by_messenger_and_user_id(
    runner: Runner, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """MAX user 1003 is not Telegram user 1003 (account 3): they are a stranger here."""
    recorder = Recorder()
    await runner.run(Incoming(max_peer(1003, 1003), Command("start")), recorder)
    assert "привяжите" in " ".join(recorder.texts()).lower()
    async with session_factory() as session:
        assert await Repositories(session).links.by_user("max", 1003) is None
        assert await Repositories(session).links.by_user("telegram", 1003) is not None


async def test_a_chat_blocked_in_one_messenger_holds_only_its_own_pushes(
    runner: Runner, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await bind_in_max(session_factory)
    async with session_factory() as session:
        account = await session.get(Account, 1)
        assert account is not None
        account.push_to = "both"
        await session.commit()
    await runner.run(Incoming(max_peer(), Reachable(False)), Recorder())
    async with session_factory() as session:
        await enqueue_pushes(
            Repositories(session),
            kind=NotificationKind.DIGEST,
            account_ids=[1],
            application_number=None,
            event_id=None,
            now=clock.now(),
        )
        await session.commit()
        rows = list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
        bindings = {
            b.messenger: b.blocked
            for b in await session.scalars(select(Binding).where(Binding.account_id == 1))
        }
    assert [(row.channel, row.chat_id, row.state) for row in rows] == [
        ("max", MAX_CHAT, "held"),
        ("telegram", 1001, "pending"),
    ]
    assert bindings == {"max": True, "telegram": False}
    # Writing again in MAX releases the MAX chat's pushes.
    await runner.run(Incoming(max_peer(), Command("menu")), Recorder())
    async with session_factory() as session:
        states = {row.channel: row.state for row in await session.scalars(select(OutboxMessage))}
    assert states == {"max": "pending", "telegram": "pending"}


def test_pushes_go_where_the_person_chose_else_to_the_messenger_bound_last() -> None:
    earlier, later = factories.T0, factories.T0 + timedelta(days=1)
    both = [("telegram", earlier, False), ("max", later, False)]
    assert pushed_to(None, both) == {"max"}
    assert pushed_to(None, [("telegram", later, False), ("max", earlier, False)]) == {"telegram"}
    assert pushed_to("telegram", both) == {"telegram"}
    assert pushed_to("both", both) == {"telegram", "max"}
    # not bound: the last one
    assert pushed_to("max", [("telegram", earlier, False)]) == {"telegram"}
    assert pushed_to("both", []) == set()


def test_the_default_and_the_fallback_skip_a_messenger_that_blocked_the_bot() -> None:
    earlier, later = factories.T0, factories.T0 + timedelta(days=1)
    max_blocked = [("telegram", earlier, False), ("max", later, True)]
    assert pushed_to(None, max_blocked) == {"telegram"}
    assert pushed_to(None, [("telegram", earlier, True), ("max", later, True)]) == {"max"}
    assert pushed_to("max", max_blocked) == {"max"}  # chosen: stays chosen
    assert pushed_to("both", max_blocked) == {"telegram", "max"}
    # a choice no longer bound falls back the same way
    assert pushed_to("max", [("telegram", earlier, True)]) == {"telegram"}


async def test_a_link_token_binds_whichever_messenger_redeems_it(
    session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    """Account 3 is bound in Telegram; a new token opened in MAX asks the Telegram owner, and
    once allowed adds a MAX binding and keeps the Telegram one, the consent and the role (they
    are the person's)."""
    async with session_factory() as session:
        repo = Repositories(session)
        minted = await mint_portal_token(repo, 3, ttl=timedelta(minutes=10), clock=clock)
        asked = await redeem_portal_token(
            repo, minted.token, MessengerUser("max", 5003, 7003, "voiskovaya"), clock=clock
        )
        assert asked == MoveRequested(minted.expires_at, adding=True, asked_in=("telegram",))
        [request] = await repo.links.move_requests(account_id=3)
        decided = await allow_move(
            repo, request.id, MessengerUser("telegram", 1003, 1003), clock=clock
        )
        await session.commit()
    assert isinstance(decided, MoveDecided)
    assert decided.adding
    outcome = decided.linked
    assert isinstance(outcome, Linked)
    assert (outcome.binding.messenger, outcome.binding.user_id, outcome.already) == (
        "max",
        5003,
        False,
    )
    async with session_factory() as session:
        bound = await Repositories(session).links.of_account(3)
        account = await session.get(Account, 3)
    assert [(b.messenger, b.user_id, b.chat_id) for b in bound] == [
        ("max", 5003, 7003),
        ("telegram", 1003, 1003),
    ]
    assert account is not None
    assert (account.consent_at, account.active_role) == (factories.T0, "listener")
