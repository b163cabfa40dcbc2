"""A portal link of an account bound in one messenger, opened in the other: nothing is bound
unnoticed. The owner of the existing binding is asked in their chat («Разрешить привязку
MAX-аккаунта … к вашей учётной записи?»), and only their «Разрешить» adds the binding (the old
one stays); a refusal, no answer or a revocation binds nothing, and pushes stay where they went.
Both directions, through the real Telegram Dispatcher and the real MAX front end over one
database."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.conversation.intents import LinkAction, LinkIntent
from bot.max.sender import MaxSender
from bot.telegram.sender import TelegramSender
from bot.texts.linking import ADD_OUTCOMES, MOVE_OUTCOMES, MOVE_STALE
from bot.texts.messengers import say
from services.clock import ManualClock
from services.linking import (
    MOVE_REQUEST_KIND,
    MoveOutcome,
    expire_move_requests,
    unlink_account,
)
from storage.models import Binding
from storage.repositories import Repositories
from tests import factories
from tests.fakes.bot_api import Message as TelegramMessage
from tests.fakes.max_api import FakeMaxAPI
from tests.harness import BotHarness
from tests.linking_support import STRANGER, STRANGER_2, mint, outbox_rows, token_rows
from tests.max_harness import MaxHarness

pytestmark = pytest.mark.usefixtures("seeded")

DIRECTOR, DIRECTOR_TELEGRAM = 1, 1001  # Петров Пётр Петрович, bound in Telegram, consented
DIRECTOR_NAME = "Петров Пётр Петрович"
MAX_ASKER = 7_100_001  # a MAX user holding the director's link
MAX_OTHER = 7_100_002  # another MAX user
MAX_ONLY, MAX_OWNER = 50, 7_100_050  # an account bound in MAX alone (consented)
MAX_ONLY_NAME = "Новикова Нина Николаевна"

ADD_TO_TELEGRAM = "Разрешить привязку MAX-аккаунта к вашей учётной записи?"
ADD_TO_MAX = "Разрешить привязку Telegram-аккаунта к вашей учётной записи?"


@pytest.fixture
def max_api(max_api: FakeMaxAPI) -> FakeMaxAPI:
    """The MAX double with the people of this file."""
    max_api.add_user(MAX_ASKER, "Пётр", "Петров", username="petrov_max")
    max_api.add_user(MAX_OTHER, "Второй")
    max_api.add_user(MAX_OWNER, "Нина", "Новикова")
    return max_api


@pytest.fixture
async def max_only(
    seeded: None, max_api: FakeMaxAPI, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """Account 50, a director of org 10 bound in MAX only, consent accepted."""
    async with session_factory() as session:
        session.add(factories.account(MAX_ONLY, MAX_ONLY_NAME, 10, "director"))
        await session.commit()
    await link_in_max(session_factory, max_api, MAX_ONLY, MAX_OWNER, "director")


async def link_in_max(
    session_factory: async_sessionmaker[AsyncSession],
    max_api: FakeMaxAPI,
    account_id: int,
    user_id: int,
    role: str,
) -> None:
    """Bind a MAX user (their dialog with the bot) to an account, consent accepted."""
    chat_id = max_api.chat_id_of(user_id)
    async with session_factory() as session:
        await factories.link(session, account_id, user_id, role, messenger="max", chat_id=chat_id)
        await session.commit()


async def allow_payload(session_factory: async_sessionmaker[AsyncSession]) -> str:
    """The callback data of «✅ Разрешить» under the one request there is."""
    [row] = await token_rows(session_factory)
    return LinkIntent(action=LinkAction.ALLOW_MOVE, token=row.id).pack()


async def deliver(harness: BotHarness, max_harness: MaxHarness, clock: ManualClock) -> None:
    """Send what both outboxes hold, as the dispatchers would."""
    telegram = TelegramSender(harness.bot, harness.settings).worker(harness.session_factory, clock)
    max_ = MaxSender(max_harness.client, max_harness.settings).worker(
        max_harness.session_factory, clock
    )
    while await telegram.drain() + await max_.drain():
        clock.advance(seconds=1)


async def bindings_of(
    session_factory: async_sessionmaker[AsyncSession], account_id: int
) -> list[tuple[str, int]]:
    async with session_factory() as session:
        rows = await session.scalars(select(Binding).where(Binding.account_id == account_id))
        return sorted((row.messenger, row.user_id) for row in rows)


async def push_messengers(
    session_factory: async_sessionmaker[AsyncSession], account_id: int
) -> set[str]:
    async with session_factory() as session:
        return {r.messenger for r in await Repositories(session).links.recipients([account_id])}


async def director_asked(
    harness: BotHarness, max_harness: MaxHarness, clock: ManualClock
) -> TelegramMessage:
    """The director's link opened by MAX_ASKER; the question in the director's Telegram."""
    await max_harness.start(MAX_ASKER, await mint(harness.session_factory, DIRECTOR, clock))
    await deliver(harness, max_harness, clock)
    return harness.api.last_bot_message(DIRECTOR_TELEGRAM)


def bot_texts(max_harness: MaxHarness, user_id: int) -> list[str]:
    return [m.text for m in max_harness.api.chat(user_id) if m.from_bot]


async def test_a_max_user_with_the_link_of_a_telegram_account_waits_for_the_owners_yes(
    harness: BotHarness,
    max_harness: MaxHarness,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> None:
    """The defect: the MAX user was bound at once, skipped the consent (the person's), opened
    the director's menu and took his pushes (MAX, bound last). Now he waits; the director is
    asked in Telegram, and only his «Разрешить» adds the MAX binding beside his Telegram one."""
    token = await mint(session_factory, DIRECTOR, clock)
    waiting = await max_harness.start(MAX_ASKER, token)
    assert waiting.text.startswith("Эта учётная запись уже привязана к Telegram.")
    assert f"«{ADD_TO_TELEGRAM}»" in waiting.text
    assert "Запрос действует до 01.09.2026 11:10." in waiting.text
    assert "«Профиль» → «Отключить Telegram»" in waiting.text
    assert DIRECTOR_NAME not in waiting.text  # the holder of a link learns nothing of the account
    assert waiting.buttons() == []
    assert len(bot_texts(max_harness, MAX_ASKER)) == 1  # no consent, no menu
    assert await bindings_of(session_factory, DIRECTOR) == [("telegram", DIRECTOR_TELEGRAM)]
    assert await push_messengers(session_factory, DIRECTOR) == {"telegram"}
    # Meanwhile he can do nothing: his /menu is an unlinked user's.
    assert "Сначала привяжите MAX" in (await max_harness.send(MAX_ASKER, "/menu")).text
    # The same link again: still waiting. Anyone else: the link is taken.
    again = await max_harness.start(MAX_ASKER, token)
    assert again.text == waiting.text
    assert "уже использована" in (await max_harness.start(MAX_OTHER, token)).text

    await deliver(harness, max_harness, clock)
    question = harness.api.last_bot_message(DIRECTOR_TELEGRAM)
    assert question.text.startswith(ADD_TO_TELEGRAM)
    assert f"открыли в MAX: @petrov_max (id {MAX_ASKER})." in question.text
    assert "этот чат останется привязанным" in question.text
    assert question.buttons() == [["✅ Разрешить", "🚫 Запретить"]]
    assert await push_messengers(session_factory, DIRECTOR) == {"telegram"}

    allowed = await harness.press(DIRECTOR_TELEGRAM, "✅ Разрешить")
    assert allowed.message_id == question.message_id
    assert allowed.text.startswith(
        f"MAX-аккаунт @petrov_max (id {MAX_ASKER}) привязан к вашей учётной записи, этот чат "
        "тоже остаётся привязанным."
    )
    assert await bindings_of(session_factory, DIRECTOR) == [
        ("max", MAX_ASKER),
        ("telegram", DIRECTOR_TELEGRAM),
    ]
    # The Telegram chat is still the director's.
    menu = await harness.send(DIRECTOR_TELEGRAM, "/menu")
    assert f"Вы вошли как {DIRECTOR_NAME}" in menu.text
    await deliver(harness, max_harness, clock)
    told = max_harness.api.last_bot_message(MAX_ASKER)
    assert told.text == (
        "Привязку этого MAX-аккаунта разрешили в Telegram, где учётная запись уже привязана. "
        f"Вы вошли как {DIRECTOR_NAME}, роль «Руководитель ОО»."
    )
    assert told.buttons() == [["◀ В главное меню"]]
    menu = await max_harness.send(MAX_ASKER, "/menu")
    assert menu.buttons()[0][0].startswith("📥 Заявки")  # the consent is the person's: accepted
    harness.assert_no_errors()
    max_harness.assert_no_errors()


@pytest.mark.usefixtures("max_only")
async def test_a_telegram_user_with_the_link_of_a_max_account_is_refused_by_the_owner(
    harness: BotHarness,
    max_harness: MaxHarness,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> None:
    harness.api.add_user(STRANGER + 5, first_name=MAX_ONLY_NAME, username="intruder")
    asker = STRANGER + 5
    token = await mint(session_factory, MAX_ONLY, clock)
    waiting = await harness.send(asker, f"/start {token}")
    assert waiting.text.startswith("Эта учётная запись уже привязана к MAX.")
    assert f"«{ADD_TO_MAX}»" in waiting.text
    assert await bindings_of(session_factory, MAX_ONLY) == [("max", MAX_OWNER)]
    assert await push_messengers(session_factory, MAX_ONLY) == {"max"}
    assert "Сначала привяжите Telegram" in (await harness.send(asker, "покажи заявки")).text

    await deliver(harness, max_harness, clock)
    question = max_harness.api.last_bot_message(MAX_OWNER)
    assert question.text.startswith(ADD_TO_MAX)
    assert f"открыли в Telegram: @intruder (id {asker})." in question.text
    assert MAX_ONLY_NAME not in question.text  # not the name the asker gave himself
    denied = await max_harness.press(MAX_OWNER, "🚫 Запретить")
    assert denied.mid == question.mid
    assert denied.text.startswith("Хорошо, Telegram-аккаунт не привязан")
    await deliver(harness, max_harness, clock)
    assert harness.api.last_bot_message(asker).text == say(
        ADD_OUTCOMES[MoveOutcome.DENIED], "telegram", by="MAX"
    )
    assert "«Профиль» → «Отключить MAX»" in harness.api.last_bot_message(asker).text
    assert await bindings_of(session_factory, MAX_ONLY) == [("max", MAX_OWNER)]
    assert await push_messengers(session_factory, MAX_ONLY) == {"max"}
    assert "уже использована" in (await harness.send(asker, f"/start {token}")).text
    # «Разрешить» afterwards, from the old question: stale, nothing bound.
    allow = await allow_payload(session_factory)
    max_harness.api.press_payload(MAX_OWNER, allow, question.mid)
    await max_harness.feed_pending()
    assert max_harness.api.message(question.mid).text == MOVE_STALE
    assert await bindings_of(session_factory, MAX_ONLY) == [("max", MAX_OWNER)]
    harness.assert_no_errors()
    max_harness.assert_no_errors()


@pytest.mark.usefixtures("max_only")
async def test_the_max_owner_allows_a_telegram_binding(
    harness: BotHarness,
    max_harness: MaxHarness,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> None:
    token = await mint(session_factory, MAX_ONLY, clock)
    await harness.send(STRANGER, f"/start {token}")
    await deliver(harness, max_harness, clock)
    allowed = await max_harness.press(MAX_OWNER, "✅ Разрешить")
    assert allowed.text.startswith(f"Telegram-аккаунт id {STRANGER} (без имени пользователя)")
    assert await bindings_of(session_factory, MAX_ONLY) == [
        ("max", MAX_OWNER),
        ("telegram", STRANGER),
    ]
    await deliver(harness, max_harness, clock)
    assert harness.api.last_bot_message(STRANGER).text.startswith(
        "Привязку этого Telegram-аккаунта разрешили в MAX"
    )
    harness.assert_no_errors()
    max_harness.assert_no_errors()


@pytest.mark.every_backend  # expiry compares stored times
async def test_an_unanswered_add_request_expires_and_binds_nothing(
    harness: BotHarness,
    max_harness: MaxHarness,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> None:
    question = await director_asked(harness, max_harness, clock)
    clock.advance(minutes=10)
    async with session_factory() as session:
        assert await expire_move_requests(Repositories(session), clock.now()) == 1
        await session.commit()
    await deliver(harness, max_harness, clock)
    assert max_harness.api.last_bot_message(MAX_ASKER).text == say(
        ADD_OUTCOMES[MoveOutcome.EXPIRED], "max"
    )
    await harness.press(DIRECTOR_TELEGRAM, "✅ Разрешить", question.message_id)
    assert harness.api.message(DIRECTOR_TELEGRAM, question.message_id).text == MOVE_STALE
    assert await bindings_of(session_factory, DIRECTOR) == [("telegram", DIRECTOR_TELEGRAM)]
    assert await push_messengers(session_factory, DIRECTOR) == {"telegram"}
    harness.assert_no_errors()
    max_harness.assert_no_errors()


async def test_forged_answers_to_an_add_request_change_nothing(
    harness: BotHarness,
    max_harness: MaxHarness,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> None:
    await link_in_max(session_factory, max_harness.api, 2, MAX_OTHER, "director")
    token = await mint(session_factory, DIRECTOR, clock)
    waiting = await max_harness.start(MAX_ASKER, token)
    allow = await allow_payload(session_factory)
    assert waiting.buttons() == []
    # Another account's owner in Telegram, a bound MAX user of another account: not asked.
    menu = await harness.send(1002, "/menu")
    await harness.press_data(1002, allow, menu.message_id)
    assert harness.api.message(1002, menu.message_id).text == MOVE_STALE
    max_menu = await max_harness.send(MAX_OTHER, "/menu")
    max_harness.api.press_payload(MAX_OTHER, allow, max_menu.mid)
    await max_harness.feed_pending()
    assert max_harness.api.last_bot_message(MAX_OTHER).text == MOVE_STALE
    assert await bindings_of(session_factory, DIRECTOR) == [("telegram", DIRECTOR_TELEGRAM)]
    # The request still stands for the owner.
    await deliver(harness, max_harness, clock)
    await harness.press(DIRECTOR_TELEGRAM, "✅ Разрешить")
    assert await bindings_of(session_factory, DIRECTOR) == [
        ("max", MAX_ASKER),
        ("telegram", DIRECTOR_TELEGRAM),
    ]
    harness.assert_no_errors()
    max_harness.assert_no_errors()


async def test_a_blocked_owner_cannot_be_asked_the_way_out_is_said(
    harness: BotHarness,
    max_harness: MaxHarness,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> None:
    harness.api.block(DIRECTOR_TELEGRAM)
    await harness.feed_pending()  # my_chat_member: the Telegram binding is marked blocked
    token = await mint(session_factory, DIRECTOR, clock)
    refused = await max_harness.start(MAX_ASKER, token)
    assert "спросить там разрешения на привязку MAX нельзя: бот там заблокирован" in refused.text
    assert "«Профиль» → «Отключить Telegram»" in refused.text
    assert "Разблокируйте бота в Telegram" in refused.text
    assert not [r for r in await outbox_rows(session_factory) if r.kind == MOVE_REQUEST_KIND]
    assert await bindings_of(session_factory, DIRECTOR) == [("telegram", DIRECTOR_TELEGRAM)]
    # The old binding revoked in the web module (DELETE …/messengers/telegram): the link binds.
    async with session_factory() as session:
        await unlink_account(Repositories(session), DIRECTOR, clock=clock, messenger="telegram")
        await session.commit()
    fresh = await mint(session_factory, DIRECTOR, clock)
    await max_harness.start(MAX_ASKER, fresh)
    assert await bindings_of(session_factory, DIRECTOR) == [("max", MAX_ASKER)]
    harness.assert_no_errors()
    max_harness.assert_no_errors()


async def test_a_max_user_bound_to_another_account_logs_out_first(
    harness: BotHarness,
    max_harness: MaxHarness,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> None:
    await link_in_max(session_factory, max_harness.api, 3, MAX_ASKER, "listener")
    token = await mint(session_factory, DIRECTOR, clock)
    refused = await max_harness.start(MAX_ASKER, token)
    assert "Сначала отвяжите этот MAX командой /logout" in refused.text
    assert not [r for r in await outbox_rows(session_factory) if r.kind == MOVE_REQUEST_KIND]
    assert await bindings_of(session_factory, DIRECTOR) == [("telegram", DIRECTOR_TELEGRAM)]
    assert await bindings_of(session_factory, 3) == [("max", MAX_ASKER), ("telegram", 1003)]
    harness.assert_no_errors()
    max_harness.assert_no_errors()


async def test_a_switch_offered_before_the_account_got_bound_elsewhere_asks_again(
    harness: BotHarness,
    max_harness: MaxHarness,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> None:
    """A MAX user bound to account 3 is offered a switch to account 50 (bound nowhere yet);
    meanwhile 50 gets bound in Telegram: «Да, сменить» must not bind it unasked."""
    async with session_factory() as session:
        session.add(factories.account(MAX_ONLY, MAX_ONLY_NAME, 10, "director"))
        await session.commit()
    await link_in_max(session_factory, max_harness.api, 3, MAX_ASKER, "listener")
    token = await mint(session_factory, MAX_ONLY, clock)
    offered = await max_harness.start(MAX_ASKER, token)
    assert "Перейти на учётную запись" in offered.text
    async with session_factory() as session:
        await factories.link(session, MAX_ONLY, STRANGER_2, "director")
        await session.commit()
    switched = await max_harness.press(MAX_ASKER, "Да, сменить учётную запись")
    assert "Сначала отвяжите этот MAX командой /logout" in switched.text
    assert await bindings_of(session_factory, MAX_ONLY) == [("telegram", STRANGER_2)]
    assert await bindings_of(session_factory, 3) == [("max", MAX_ASKER), ("telegram", 1003)]
    harness.assert_no_errors()
    max_harness.assert_no_errors()


async def test_revoking_the_asked_binding_tells_the_asker_and_binds_nothing(
    harness: BotHarness,
    max_harness: MaxHarness,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> None:
    question = await director_asked(harness, max_harness, clock)
    async with session_factory() as session:
        await unlink_account(Repositories(session), DIRECTOR, clock=clock, messenger="telegram")
        await session.commit()
    await deliver(harness, max_harness, clock)
    assert max_harness.api.last_bot_message(MAX_ASKER).text == say(
        ADD_OUTCOMES[MoveOutcome.RELEASED], "max"
    )
    await harness.press(DIRECTOR_TELEGRAM, "✅ Разрешить", question.message_id)
    assert await bindings_of(session_factory, DIRECTOR) == []
    harness.assert_no_errors()
    max_harness.assert_no_errors()


async def test_revoking_one_messenger_keeps_the_other_messengers_links_and_requests(
    harness: BotHarness,
    max_harness: MaxHarness,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> None:
    """The director, bound in Telegram and in MAX, has a move request waiting in each and a
    portal link not opened yet. Revoking MAX (DELETE …/messengers/max) ends the MAX request
    (its asker is told) and nothing else: the Telegram owner can still answer, and the link
    still works (it asks before binding, the account being bound in Telegram)."""
    await link_in_max(session_factory, max_harness.api, DIRECTOR, MAX_OWNER, "director")
    await harness.send(STRANGER, f"/start {await mint(session_factory, DIRECTOR, clock)}")
    await max_harness.start(MAX_ASKER, await mint(session_factory, DIRECTOR, clock))
    unopened = await mint(session_factory, DIRECTOR, clock)
    await deliver(harness, max_harness, clock)
    assert harness.api.last_bot_message(DIRECTOR_TELEGRAM).text.startswith(
        "Разрешить привязку к другому Telegram-аккаунту?"
    )
    assert max_harness.api.last_bot_message(MAX_OWNER).text.startswith(
        "Разрешить привязку к другому MAX-аккаунту?"
    )
    waiting = harness.api.last_bot_message(STRANGER)

    async with session_factory() as session:
        await unlink_account(Repositories(session), DIRECTOR, clock=clock, messenger="max")
        await session.commit()
    await deliver(harness, max_harness, clock)
    assert max_harness.api.last_bot_message(MAX_ASKER).text == say(
        MOVE_OUTCOMES[MoveOutcome.RELEASED], "max"
    )
    assert harness.api.last_bot_message(STRANGER).message_id == waiting.message_id  # not told
    allowed = await harness.press(DIRECTOR_TELEGRAM, "✅ Разрешить")
    assert allowed.text.startswith("Привязка перенесена на Telegram-аккаунт")
    assert await bindings_of(session_factory, DIRECTOR) == [("telegram", STRANGER)]
    asked = await max_harness.start(MAX_OTHER, unopened)
    assert asked.text.startswith("Эта учётная запись уже привязана к Telegram.")
    harness.assert_no_errors()
    max_harness.assert_no_errors()


async def test_revoking_the_last_binding_revokes_every_link_of_the_account(
    harness: BotHarness,
    max_harness: MaxHarness,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> None:
    """Bound nowhere after the revocation, an unopened link would bind at once: it goes."""
    unopened = await mint(session_factory, DIRECTOR, clock)
    async with session_factory() as session:
        await unlink_account(Repositories(session), DIRECTOR, clock=clock, messenger="telegram")
        await session.commit()
    assert "не найдена" in (await max_harness.start(MAX_ASKER, unopened)).text
    assert await bindings_of(session_factory, DIRECTOR) == []
    harness.assert_no_errors()
    max_harness.assert_no_errors()
