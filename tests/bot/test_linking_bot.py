"""Linking in the chat through the real Dispatcher and the Bot API double: portal-first
`/start <token>` with every refusal, throttling per user and overall, switching accounts,
moving a binding only with its owner's permission (asked through the outbox), /logout, the
consent gate in front of every router, the profile and role switching."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.conversation.intents import (
    AppAction,
    AppIntent,
    LinkAction,
    LinkIntent,
    ListAction,
    ListIntent,
    MenuAction,
    MenuIntent,
    ProfileAction,
    ProfileIntent,
)
from bot.telegram.bot import DEFAULT_COMMANDS
from bot.telegram.commands import chat_commands
from bot.telegram.sender import build_notifier
from bot.texts import STALE_BUTTON
from bot.texts.linking import (
    CONSENT_VERSION,
    MOVE_ALLOWED_OWNER,
    MOVE_EXPIRED_OWNER,
    MOVE_OUTCOMES,
    MOVE_STALE,
    render_unlinked,
)
from bot.texts.messengers import say
from services.clock import ManualClock
from services.domain import Role
from services.linking import (
    CONSENT_KIND,
    MOVE_OUTCOME_KIND,
    MOVE_REQUEST_KIND,
    THROTTLE_OVERALL_LIMIT,
    UNLINKED_KIND,
    MessengerUser,
    MoveOutcome,
    expire_move_requests,
    new_token,
    unlink_account,
)
from storage.repositories import Repositories
from tests import factories
from tests.harness import BotHarness
from tests.linking_support import (
    NEW_DIRECTOR,
    NEW_DIRECTOR_NAME,
    NEW_LISTENER,
    NEW_LISTENER_NAME,
    NO_ROLES,
    STRANGER,
    STRANGER_2,
    account_link,
    add_new_accounts,
    link_of,
    mint,
    outbox_rows,
    token_rows,
)

pytestmark = pytest.mark.usefixtures("seeded")

CONSENT_TITLE = "Согласие на обработку персональных данных"
SIGNED_IN_DIRECTOR = f"Вы вошли как {NEW_DIRECTOR_NAME}, роль «Руководитель ОО»."
MOVE_TITLE = "Разрешить привязку к другому Telegram-аккаунту?"
# The director of the reported takeover, bound to Telegram user 1005 in the seed.
OWNER_ACCOUNT, OWNER, OWNER_NAME = 5, 1005, "Морозов Игорь Викторович"


@pytest.fixture(autouse=True)
async def new_accounts(seeded: None, session_factory: async_sessionmaker[AsyncSession]) -> None:
    await add_new_accounts(session_factory)


async def deliver(harness: BotHarness, clock: ManualClock) -> None:
    """Send what the outbox holds, as the dispatcher would; the clock moves on a second after
    each round (one message a second per chat)."""
    notifier = build_notifier(harness.bot, harness.session_factory, harness.settings, clock)
    while await notifier.drain():
        clock.advance(seconds=1)


async def assert_still_bound(session_factory: async_sessionmaker[AsyncSession]) -> None:
    link = await account_link(session_factory, OWNER_ACCOUNT)
    assert link is not None
    assert (link.user_id, link.chat_id) == (OWNER, OWNER)


def scope(chat_id: int) -> dict[str, object]:
    return {"type": "chat", "chat_id": chat_id}


def command_names(commands: list[dict[str, str]] | None) -> list[str]:
    return [c["command"] for c in commands or []]


async def test_portal_link_binds_shows_the_consent_then_the_menu(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    token = await mint(session_factory, NEW_DIRECTOR, clock)
    await harness.send(STRANGER, f"/start {token}")
    signed_in, consent = [m for m in harness.api.chat(STRANGER) if m.from_bot][-2:]
    assert signed_in.text == SIGNED_IN_DIRECTOR
    assert consent.text.startswith(CONSENT_TITLE)
    assert "ГБУ ДПО «Челябинский институт развития образования»" in consent.text
    assert consent.buttons() == [["Ознакомился"]]
    link = await link_of(session_factory, STRANGER)
    assert link is not None
    assert (link.account_id, link.account.active_role, link.account.consent_at) == (
        NEW_DIRECTOR,
        "director",
        None,
    )

    clock.advance(minutes=2)
    menu = await harness.press(STRANGER, "Ознакомился")
    assert menu.message_id == consent.message_id  # edited in place
    assert f"Вы вошли как {NEW_DIRECTOR_NAME}, роль «Руководитель ОО»" in menu.text
    assert menu.buttons()[0] == ["📥 Заявки (0 новых)"]
    link = await link_of(session_factory, STRANGER)
    assert link is not None
    assert (link.account.consent_at, link.account.consent_version) == (clock.now(), CONSENT_VERSION)
    commands = harness.api.commands_for(scope(STRANGER))
    assert command_names(commands) == ["menu", "profile", "help", "logout"]
    assert commands is not None
    assert commands[0]["description"] == "Главное меню: заявки педагогов"
    harness.assert_no_errors()


@pytest.mark.every_backend  # expiry compares stored times
async def test_used_expired_unknown_and_malformed_tokens_get_distinct_answers(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    harness.api.add_user(STRANGER_2, first_name="Второй")
    used = await mint(session_factory, NEW_DIRECTOR, clock)
    await harness.send(STRANGER, f"/start {used}")
    answers = {
        "used": await harness.send(STRANGER_2, f"/start {used}"),
        "unknown": await harness.send(STRANGER_2, f"/start {new_token()}"),
        "malformed": await harness.send(STRANGER_2, "/start abc-123"),
    }
    expiring = await mint(session_factory, NEW_LISTENER, clock)
    clock.advance(minutes=10)
    answers["expired"] = await harness.send(STRANGER_2, f"/start {expiring}")

    assert "уже использована" in answers["used"].text
    assert "не найдена" in answers["unknown"].text
    assert "повреждена" in answers["malformed"].text
    assert "Срок действия ссылки для входа истёк: она действует 10 мин." in answers["expired"].text
    texts = {kind: answer.text for kind, answer in answers.items()}
    assert len(set(texts.values())) == 4
    for text in texts.values():  # each says how to get a new link
        assert "Получите новую ссылку в модуле «Организация ДПО»" in text
        assert "Войти через Госуслуги" not in text  # no OIDC provider configured here
    assert await link_of(session_factory, STRANGER_2) is None
    assert (await account_link(session_factory, NEW_LISTENER)) is None
    harness.assert_no_errors()


@pytest.mark.every_backend  # expiry compares stored times
async def test_a_token_is_valid_until_the_last_second_of_its_ttl(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    token = await mint(session_factory, NEW_LISTENER, clock)
    clock.advance(minutes=9, seconds=59)
    await harness.send(STRANGER, f"/start {token}")
    link = await link_of(session_factory, STRANGER)
    assert link is not None
    assert link.account_id == NEW_LISTENER


async def test_a_bot_first_token_is_not_accepted_in_start(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    from services.linking import mint_bot_token

    async with session_factory() as session:
        minted = await mint_bot_token(
            Repositories(session),
            MessengerUser("telegram", STRANGER, STRANGER),
            ttl=timedelta(minutes=10),
            clock=clock,
        )
        await session.commit()
    reply = await harness.send(STRANGER, f"/start {minted.token}")
    assert "не найдена" in reply.text
    assert await link_of(session_factory, STRANGER) is None


@pytest.mark.every_backend  # throttling counts stored times
async def test_five_failures_in_a_minute_throttle_the_user_on_every_replica(
    harness: BotHarness,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> None:
    for attempt in range(5):
        clock.advance(seconds=5)
        reply = await harness.send(STRANGER, f"/start {new_token() if attempt % 2 else 'x'}")
        assert "Слишком много" not in reply.text
    good = await mint(session_factory, NEW_DIRECTOR, clock)

    # Another replica of the bot (its own Dispatcher) over the same database.
    replica = BotHarness(harness.api, harness.settings, session_factory, clock)
    try:
        reply = await replica.send(STRANGER, f"/start {good}")
    finally:
        await replica.close()
    assert "Слишком много неудачных попыток входа. Подождите минуту" in reply.text
    assert await link_of(session_factory, STRANGER) is None

    # Other users are not affected.
    other = await mint(session_factory, NEW_LISTENER, clock)
    harness.api.add_user(STRANGER_2, first_name="Второй")
    reply = await harness.send(STRANGER_2, f"/start {other}")
    assert reply.text.startswith(CONSENT_TITLE)

    # A minute after the first failures the window has moved on; the throttled attempt did not
    # count, so the still-valid token works.
    clock.advance(seconds=40)
    reply = await harness.send(STRANGER, f"/start {good}")
    assert reply.text.startswith(CONSENT_TITLE)
    link = await link_of(session_factory, STRANGER)
    assert link is not None
    assert link.account_id == NEW_DIRECTOR
    harness.assert_no_errors()


@pytest.mark.every_backend  # throttling counts stored times
async def test_four_failures_do_not_throttle(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    for _ in range(4):
        await harness.send(STRANGER, f"/start {new_token()}")
    token = await mint(session_factory, NEW_DIRECTOR, clock)
    reply = await harness.send(STRANGER, f"/start {token}")
    assert reply.text.startswith(CONSENT_TITLE)


async def test_an_account_without_roles_is_not_bound(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    token = await mint(session_factory, NO_ROLES, clock)
    reply = await harness.send(STRANGER, f"/start {token}")
    assert "нет ни одной роли" in reply.text
    assert await link_of(session_factory, STRANGER) is None


async def test_a_linked_user_confirms_switching_to_another_account(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    token = await mint(session_factory, NEW_LISTENER, clock)
    question = await harness.send(1003, f"/start {token}")
    assert "привязан к учётной записи <b>Войсковая Юлия Олеговна</b>" in (question.html or "")
    assert f"Перейти на учётную запись <b>{NEW_LISTENER_NAME}</b>?" in (question.html or "")
    assert question.buttons() == [["Да, сменить учётную запись"], ["Отмена"]]
    link = await link_of(session_factory, 1003)
    assert link is not None
    assert link.account_id == 3  # nothing changes before the answer

    await harness.press(1003, "Да, сменить учётную запись")
    assert harness.api.message(1003, question.message_id).text == (
        f"Вы вошли как {NEW_LISTENER_NAME}, роль «Слушатель»."
    )
    assert harness.api.last_bot_message(1003).text.startswith(CONSENT_TITLE)
    link = await link_of(session_factory, 1003)
    assert link is not None
    assert (link.account_id, link.account.consent_at) == (NEW_LISTENER, None)
    assert await account_link(session_factory, 3) is None
    # The person switched in this very chat: no message about it through the outbox.
    assert not [r for r in await outbox_rows(session_factory) if r.kind == UNLINKED_KIND]
    harness.assert_no_errors()


async def test_a_linked_user_may_keep_the_account_and_the_token_stays_valid(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    token = await mint(session_factory, NEW_LISTENER, clock)
    await harness.send(1003, f"/start {token}")
    kept = await harness.press(1003, "Отмена")
    assert kept.text == "Хорошо, остаётесь в учётной записи Войсковая Юлия Олеговна."
    link = await link_of(session_factory, 1003)
    assert link is not None
    assert link.account_id == 3

    reply = await harness.send(STRANGER, f"/start {token}")
    assert reply.text.startswith(CONSENT_TITLE)
    harness.assert_no_errors()


async def test_a_forged_or_stale_switch_button_changes_nothing(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    token = await mint(session_factory, NEW_LISTENER, clock)
    question = await harness.send(1003, f"/start {token}")
    token_id = (await token_rows(session_factory))[-1].id
    # Another user forges the button with the same token id.
    message = await harness.send(1004, "/menu")
    forged = LinkIntent(action=LinkAction.SWITCH, token=token_id).pack()
    await harness.press_data(1004, forged, message.message_id)
    assert harness.api.last_bot_message(1004).text == (
        "Запрос на смену учётной записи больше не действует."
    )
    link = await link_of(session_factory, 1004)
    assert link is not None
    assert link.account_id == 4

    # The question outlives the token.
    clock.advance(minutes=11)
    await harness.press(1003, "Да, сменить учётную запись", question.message_id)
    assert "Срок действия ссылки для входа истёк" in harness.api.last_bot_message(1003).text
    link = await link_of(session_factory, 1003)
    assert link is not None
    assert link.account_id == 3
    harness.assert_no_errors()


async def test_a_leaked_link_of_a_bound_account_moves_nothing_and_the_owner_denies(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    """The takeover as reported: a leaked portal link of a director bound to their Telegram,
    redeemed by someone else, moved the binding at once, and he approved an application. Now
    nothing moves: the owner is asked in their own chat, names the asker by @username and id,
    and says no."""
    async with session_factory() as session:
        session.add(factories.application(900, 6, 20))
        await session.commit()
    harness.api.add_user(STRANGER, first_name=OWNER_NAME, username="intruder")
    token = await mint(session_factory, OWNER_ACCOUNT, clock)

    reply = await harness.send(STRANGER, f"/start {token}")
    assert "уже привязана к другому Telegram-аккаунту" in reply.text
    assert "Ждём его ответа" in reply.text
    assert "Запрос действует до 01.09.2026 11:10." in reply.text  # 06:00 UTC + 10 min, local
    assert OWNER_NAME not in reply.text  # the holder of a link learns nothing of the account
    await assert_still_bound(session_factory)
    # He cannot act meanwhile: a forged «Одобрить» is refused, the application stays new.
    forged = AppIntent(action=AppAction.APPROVE, number=900).pack()
    await harness.press_data(STRANGER, forged, reply.message_id)
    assert harness.api.calls_of("answerCallbackQuery")[-1].params["text"] == STALE_BUTTON
    async with session_factory() as session:
        assert await Repositories(session).applications.current_status(900) == "new"

    await deliver(harness, clock)
    question = harness.api.last_bot_message(OWNER)
    assert question.text.startswith(MOVE_TITLE)
    assert f"в другом Telegram-аккаунте: @intruder (id {STRANGER})." in question.text
    assert OWNER_NAME not in question.text  # not the name the asker gave himself
    assert question.buttons() == [["✅ Разрешить", "🚫 Запретить"]]
    # A second holder of the leaked link: the link is taken.
    harness.api.add_user(STRANGER_2, first_name="Второй")
    assert "уже использована" in (await harness.send(STRANGER_2, f"/start {token}")).text

    denied = await harness.press(OWNER, "🚫 Запретить")
    assert denied.message_id == question.message_id
    assert denied.text.startswith("Хорошо, учётная запись остаётся привязанной к этому чату")
    await deliver(harness, clock)
    assert harness.api.last_bot_message(STRANGER).text == say(
        MOVE_OUTCOMES[MoveOutcome.DENIED], "telegram"
    )
    await assert_still_bound(session_factory)
    assert await link_of(session_factory, STRANGER) is None
    assert "уже использована" in (await harness.send(STRANGER, f"/start {token}")).text
    # The owner's «Разрешить» afterwards, from the old question: stale.
    allow = LinkIntent(
        action=LinkAction.ALLOW_MOVE, token=(await token_rows(session_factory))[0].id
    )
    await harness.press_data(OWNER, allow.pack(), question.message_id)
    assert harness.api.last_bot_message(OWNER).text == MOVE_STALE
    await assert_still_bound(session_factory)
    harness.assert_no_errors()


async def test_the_owner_allows_and_the_binding_moves(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    async with session_factory() as session:
        session.add(factories.application(900, 6, 20))
        await session.commit()
    harness.api.add_user(STRANGER, first_name="Новый телефон", username="morozov_new")
    token = await mint(session_factory, OWNER_ACCOUNT, clock)
    await harness.send(STRANGER, f"/start {token}")
    await deliver(harness, clock)
    question = harness.api.last_bot_message(OWNER)
    assert "@morozov_new" in question.text

    allowed = await harness.press(OWNER, "✅ Разрешить")
    assert allowed.message_id == question.message_id
    assert allowed.text == say(
        MOVE_ALLOWED_OWNER, "telegram", account=f"@morozov_new (id {STRANGER})"
    )
    link = await account_link(session_factory, OWNER_ACCOUNT)
    assert link is not None
    assert (link.user_id, link.chat_id, link.account.consent_at) == (STRANGER, STRANGER, None)
    assert await link_of(session_factory, OWNER) is None
    assert harness.api.commands_for(scope(OWNER)) is None
    # The new chat hears the outcome, then the consent, through the outbox.
    rows = await outbox_rows(session_factory)
    assert [(r.kind, r.chat_id) for r in rows if r.state == "pending"] == [
        (MOVE_OUTCOME_KIND, STRANGER),
        (CONSENT_KIND, STRANGER),
    ]
    await deliver(harness, clock)
    signed_in, consent = [m for m in harness.api.chat(STRANGER) if m.from_bot][-2:]
    assert signed_in.text == (
        "Владелец прежнего Telegram-аккаунта разрешил перенос привязки. Вы вошли как "
        f"{OWNER_NAME}, роль «Руководитель ОО»."
    )
    assert consent.text.startswith(CONSENT_TITLE)
    menu = await harness.press(STRANGER, "Ознакомился")
    assert menu.message_id == consent.message_id
    assert menu.buttons()[0] == ["📥 Заявки (1 новая)"]
    # The old chat is unlinked: its /menu is the unlinked one.
    assert "Сначала привяжите Telegram" in (await harness.send(OWNER, "покажи заявки")).text
    harness.assert_no_errors()


@pytest.mark.every_backend  # expiry compares stored times
async def test_an_unanswered_request_expires_with_the_token(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    token = await mint(session_factory, OWNER_ACCOUNT, clock)
    await harness.send(STRANGER, f"/start {token}")
    await deliver(harness, clock)
    question = harness.api.last_bot_message(OWNER)
    clock.advance(minutes=9)
    async with session_factory() as session:
        assert await expire_move_requests(Repositories(session), clock.now()) == 0
    clock.advance(minutes=1)
    # Two dispatchers look at once: one notice.
    for _ in range(2):
        async with session_factory() as session:
            await expire_move_requests(Repositories(session), clock.now())
            await session.commit()
    await deliver(harness, clock)
    expired = [m for m in harness.api.chat(STRANGER) if m.from_bot][-1]
    assert expired.text == say(MOVE_OUTCOMES[MoveOutcome.EXPIRED], "telegram")
    assert [m.text for m in harness.api.chat(STRANGER)].count(expired.text) == 1
    await harness.press(OWNER, "✅ Разрешить", question.message_id)
    assert harness.api.message(OWNER, question.message_id).text == MOVE_STALE
    await assert_still_bound(session_factory)
    assert "уже использована" in (await harness.send(STRANGER, f"/start {token}")).text

    # The owner answering after the expiry, before any sweep, closes it too.
    token = await mint(session_factory, OWNER_ACCOUNT, clock)
    await harness.send(STRANGER, f"/start {token}")
    await deliver(harness, clock)
    clock.advance(minutes=10)
    await harness.press(OWNER, "✅ Разрешить")
    assert harness.api.last_bot_message(OWNER).text == MOVE_EXPIRED_OWNER
    await deliver(harness, clock)
    assert harness.api.last_bot_message(STRANGER).text == say(
        MOVE_OUTCOMES[MoveOutcome.EXPIRED], "telegram"
    )
    await assert_still_bound(session_factory)
    harness.assert_no_errors()


async def test_forged_answers_to_a_move_request_change_nothing(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    token = await mint(session_factory, OWNER_ACCOUNT, clock)
    waiting = await harness.send(STRANGER, f"/start {token}")
    token_id = (await token_rows(session_factory))[0].id
    allow = LinkIntent(action=LinkAction.ALLOW_MOVE, token=token_id).pack()
    # The asker himself, and another bound user, press «Разрешить» with forged data.
    await harness.press_data(STRANGER, allow, waiting.message_id)
    assert harness.api.last_bot_message(STRANGER).text == MOVE_STALE
    menu = await harness.send(1001, "/menu")
    await harness.press_data(1001, allow, menu.message_id)
    assert harness.api.message(1001, menu.message_id).text == MOVE_STALE
    assert await link_of(session_factory, STRANGER) is None
    await assert_still_bound(session_factory)
    link = await link_of(session_factory, 1001)
    assert link is not None
    assert link.account_id == 1
    # The request still stands for the owner.
    await deliver(harness, clock)
    await harness.press(OWNER, "✅ Разрешить")
    link = await account_link(session_factory, OWNER_ACCOUNT)
    assert link is not None
    assert link.user_id == STRANGER
    harness.assert_no_errors()


async def test_a_blocked_owner_cannot_be_asked_revocation_is_needed(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    harness.api.block(OWNER)
    await harness.feed_pending()  # my_chat_member: the chat is marked blocked
    token = await mint(session_factory, OWNER_ACCOUNT, clock)
    reply = await harness.send(STRANGER, f"/start {token}")
    assert "спросить его владельца нельзя: в том чате бот заблокирован" in reply.text
    assert "«Профиль» → «Отключить Telegram»" in reply.text
    assert not [r for r in await outbox_rows(session_factory) if r.kind == MOVE_REQUEST_KIND]
    await assert_still_bound(session_factory)
    # The web module revokes the binding (DELETE /api/v1/accounts/{id}/telegram); a new link
    # then binds at once.
    async with session_factory() as session:
        await unlink_account(Repositories(session), OWNER_ACCOUNT, clock=clock)
        await session.commit()
    assert "не найдена" in (await harness.send(STRANGER, f"/start {token}")).text
    fresh = await mint(session_factory, OWNER_ACCOUNT, clock)
    assert (await harness.send(STRANGER, f"/start {fresh}")).text.startswith(CONSENT_TITLE)
    link = await account_link(session_factory, OWNER_ACCOUNT)
    assert link is not None
    assert link.user_id == STRANGER
    harness.assert_no_errors()


async def test_revocation_while_the_owner_is_asked_tells_the_asker(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    token = await mint(session_factory, OWNER_ACCOUNT, clock)
    await harness.send(STRANGER, f"/start {token}")
    assert "Ждём его ответа" in (await harness.send(STRANGER, f"/start {token}")).text  # again
    await deliver(harness, clock)
    question = harness.api.last_bot_message(OWNER)
    async with session_factory() as session:
        await unlink_account(Repositories(session), OWNER_ACCOUNT, clock=clock)
        await session.commit()
    await deliver(harness, clock)
    assert harness.api.last_bot_message(STRANGER).text == say(
        MOVE_OUTCOMES[MoveOutcome.RELEASED], "telegram"
    )
    await harness.press(OWNER, "✅ Разрешить", question.message_id)
    assert await account_link(session_factory, OWNER_ACCOUNT) is None
    assert await link_of(session_factory, STRANGER) is None
    harness.assert_no_errors()


async def test_a_user_bound_elsewhere_logs_out_before_asking_for_a_bound_account(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    token = await mint(session_factory, OWNER_ACCOUNT, clock)
    reply = await harness.send(1003, f"/start {token}")
    assert "Сначала отвяжите этот Telegram командой /logout" in reply.text
    assert not [r for r in await outbox_rows(session_factory) if r.kind == MOVE_REQUEST_KIND]
    # Offered a switch first, then the account got bound elsewhere: the same answer.
    other = await mint(session_factory, NEW_LISTENER, clock)
    await harness.send(1003, f"/start {other}")
    async with session_factory() as session:
        await factories.link(session, NEW_LISTENER, STRANGER, "listener")
        await session.commit()
    switched = await harness.press(1003, "Да, сменить учётную запись")
    assert "Сначала отвяжите этот Telegram командой /logout" in switched.text
    link = await link_of(session_factory, 1003)
    assert link is not None
    assert link.account_id == 3
    await harness.send(1003, "/logout")
    await harness.press(1003, "Да, отвязать")
    assert "Ждём его ответа" in (await harness.send(1003, f"/start {token}")).text
    harness.assert_no_errors()


@pytest.mark.every_backend  # throttling counts stored times
async def test_many_users_guessing_are_throttled_overall(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    """The guessing as reported: 120 guesses from 30 users, 4 each (under the per-user limit),
    went unthrottled. Now after THROTTLE_OVERALL_LIMIT failures in a minute everyone waits."""
    guessers = range(3000, 3030)
    for user_id in guessers:
        harness.api.add_user(user_id, first_name="Угадывающий")
    answers = []
    for _ in range(4):
        for user_id in guessers:
            answers.append((await harness.send(user_id, f"/start {new_token()}")).text)
    refused = [a for a in answers if a.startswith("Сейчас у бота слишком много неудачных")]
    assert len(refused) == 120 - THROTTLE_OVERALL_LIMIT
    assert all("не найдена" in a for a in answers[:THROTTLE_OVERALL_LIMIT])
    # Meanwhile a valid link is not even looked at, for anyone.
    token = await mint(session_factory, NEW_DIRECTOR, clock)
    reply = await harness.send(STRANGER, f"/start {token}")
    assert reply.text.startswith("Сейчас у бота слишком много неудачных попыток входа")
    assert await link_of(session_factory, STRANGER) is None
    clock.advance(minutes=1)
    assert (await harness.send(STRANGER, f"/start {token}")).text.startswith(CONSENT_TITLE)
    harness.assert_no_errors()


async def test_redeeming_a_token_of_ones_own_account_again(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    token = await mint(session_factory, 3, clock)
    await harness.send(1003, f"/start {token}")
    already, menu = [m for m in harness.api.chat(1003) if m.from_bot][-2:]
    assert already.text == "Вы уже вошли как Войсковая Юлия Олеговна, роль «Слушатель»."
    assert menu.buttons()[0] == ["📄 Мои заявки"]
    reply = await harness.send(STRANGER, f"/start {token}")
    assert "уже использована" in reply.text


async def test_logout_asks_then_unlinks_and_forgets_the_chat(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    menu = await harness.send(1003, "/menu")
    question = await harness.send(1003, "/logout")
    assert "Отвязать Telegram от учётной записи <b>Войсковая Юлия Олеговна</b>?" in (
        question.html or ""
    )
    kept = await harness.press(1003, "Отмена")
    assert kept.text == "Хорошо, Telegram остаётся привязанным."
    assert await link_of(session_factory, 1003) is not None

    pending = await mint(session_factory, 3, clock)
    await harness.send(1003, "/logout")
    done = await harness.press(1003, "Да, отвязать")
    assert done.text.startswith("Telegram отвязан от учётной записи")
    assert await link_of(session_factory, 1003) is None
    assert await token_rows(session_factory) == []  # the unused token of the account is revoked
    assert [r for r in await outbox_rows(session_factory) if r.chat_id == 1003] == []
    assert harness.api.commands_for(scope(1003)) is None
    reply = await harness.send(1003, f"/start {pending}")
    assert "не найдена" in reply.text

    # A button of the old menu is answered, not left spinning.
    await harness.press(1003, "❓ Помощь", menu.message_id)
    answer = harness.api.calls_of("answerCallbackQuery")[-1].params
    assert answer["text"] == "Кнопка устарела, откройте меню заново: /menu"
    reply = await harness.send(1003, "/logout")
    assert reply.text.startswith("Telegram не привязан")
    harness.assert_no_errors()


async def test_revocation_by_the_web_module_tells_the_chat_through_the_outbox(
    session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    async with session_factory() as session:
        removed = await unlink_account(Repositories(session), 3, clock=clock)
        missing = await unlink_account(Repositories(session), NEW_DIRECTOR, clock=clock)
        await session.commit()
    assert [binding.chat_id for binding in removed] == [1003]
    assert missing == []
    rows = await outbox_rows(session_factory)
    assert [(r.kind, r.chat_id, r.payload) for r in rows] == [
        (UNLINKED_KIND, 1003, {"reason": "revoked"})
    ]
    assert "снята в модуле" in render_unlinked(rows[0].payload, "telegram")


async def test_unconsented_user_gets_only_the_consent_screen_from_every_router(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    token = await mint(session_factory, NEW_DIRECTOR, clock)
    await harness.send(STRANGER, f"/start {token}")
    consent = harness.api.last_bot_message(STRANGER)

    commands = {f"/{c.command}" for c in DEFAULT_COMMANDS}
    for role in Role:
        commands |= {f"/{c.command}" for c in chat_commands(role)}
    commands -= {"/logout"}  # withdrawing needs no consent (tested below)
    commands |= {"/menu", "/start", "/cancel", "/start app_39744", "Покажи заявки", "39744"}
    for text in sorted(commands):
        before = len(harness.api.chat(STRANGER))
        reply = await harness.send(STRANGER, text)
        bot_replies = [m for m in harness.api.chat(STRANGER)[before:] if m.from_bot]
        assert len(bot_replies) == 1, text
        # One consent message, pointed to: not the whole text again for every message.
        assert reply.text.startswith("Чтобы продолжить, прочитайте согласие"), text
        assert reply.buttons() == [["📄 Открыть согласие"]], text
    consents = [m for m in harness.api.chat(STRANGER) if m.text.startswith(CONSENT_TITLE)]
    assert consents == [harness.api.message(STRANGER, consent.message_id)]
    opened = await harness.press(STRANGER, "📄 Открыть согласие")
    assert opened.message_id == reply.message_id  # the pointer becomes the consent, in place
    assert opened.text.startswith(CONSENT_TITLE)
    assert opened.buttons() == [["Ознакомился"]]

    buttons = [MenuIntent(action=action).pack() for action in MenuAction]
    buttons += [AppIntent(action=action, number=39744).pack() for action in AppAction]
    buttons += [ListIntent(action=action).pack() for action in ListAction]
    buttons += [ProfileIntent(action=ProfileAction.ROLES).pack()]
    buttons += [ProfileIntent(action=ProfileAction.SET_ROLE, role=role).pack() for role in Role]
    for data in buttons:
        calls = len(harness.api.calls_of("answerCallbackQuery"))
        await harness.press_data(STRANGER, data, consent.message_id)
        answers = harness.api.calls_of("answerCallbackQuery")[calls:]
        assert [a.params.get("text") for a in answers] == [
            "Сначала ознакомьтесь с согласием на обработку персональных данных"
        ], data
        shown = harness.api.message(STRANGER, consent.message_id)
        assert shown.text.startswith(CONSENT_TITLE), data
        assert shown.buttons() == [["Ознакомился"]], data

    link = await link_of(session_factory, STRANGER)
    assert link is not None
    assert (link.account.consent_at, link.account.active_role) == (None, "director")
    assert harness.api.commands_for(scope(STRANGER)) is None

    # /logout works before the consent: a person who does not agree can leave.
    await harness.send(STRANGER, "/logout")
    await harness.press(STRANGER, "Да, отвязать")
    assert await link_of(session_factory, STRANGER) is None
    harness.assert_no_errors()


async def test_a_new_consent_version_asks_again(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with session_factory() as session:
        link = await Repositories(session).links.by_user("telegram", 1003)
        assert link is not None
        link.account.consent_version = "0"
        await session.commit()
    reply = await harness.send(1003, "/menu")
    assert reply.text.startswith(CONSENT_TITLE)
    menu = await harness.press(1003, "Ознакомился")
    assert menu.buttons()[0] == ["📄 Мои заявки"]
    # «Ознакомился» pressed again on the old screen just opens the menu.
    await harness.press_data(1003, "c:ok", reply.message_id)
    assert harness.api.message(1003, reply.message_id).buttons()[0] == ["📄 Мои заявки"]
    harness.assert_no_errors()


async def test_profile_shows_the_account_and_roles_switch_in_place(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    menu = await harness.send(1001, "/menu")
    profile = await harness.press(1001, "👤 Профиль / сменить роль")
    assert profile.message_id == menu.message_id
    assert profile.text == (
        "Профиль\n\n"
        "ФИО: Петров Пётр Петрович\n"
        "Организация: МАОУ «СОШ № 10» г. Челябинска\n"
        "Роли: Руководитель ОО, Слушатель\n"
        "Активная роль: Руководитель ОО"
    )
    roles = await harness.press(1001, "🔁 Сменить роль")
    assert roles.buttons() == [["✓ Руководитель ОО"], ["Слушатель"], ["◀ В главное меню"]]

    switched = await harness.press(1001, "Слушатель")
    assert switched.message_id == menu.message_id
    assert "Вы вошли как Петров Пётр Петрович, роль «Слушатель»" in switched.text
    assert switched.buttons()[0] == ["📄 Мои заявки"]
    answer = harness.api.calls_of("answerCallbackQuery")[-1].params
    assert answer["text"] == "Роль: Слушатель"
    link = await link_of(session_factory, 1001)
    assert link is not None
    assert link.account.active_role == "listener"
    commands = harness.api.commands_for(scope(1001))
    assert commands is not None
    assert commands[0] == {"command": "menu", "description": "Главное меню: мои заявки"}

    # The next update acts in the new role.
    profile = await harness.send(1001, "/profile")
    assert profile.text.endswith("Активная роль: Слушатель")
    await harness.press(1001, "🔁 Сменить роль")
    back = await harness.press(1001, "Руководитель ОО")
    assert back.buttons()[0] == ["📥 Заявки (0 новых)"]
    harness.assert_no_errors()


async def test_a_forged_role_is_refused(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    menu = await harness.send(1003, "/menu")
    forged = ProfileIntent(action=ProfileAction.SET_ROLE, role=Role.DIRECTOR).pack()
    await harness.press_data(1003, forged, menu.message_id)
    answer = harness.api.calls_of("answerCallbackQuery")[-1].params
    assert answer["text"] == "У вас нет этой роли в модуле «Организация ДПО»"
    assert answer["show_alert"] is True
    assert harness.api.message(1003, menu.message_id).buttons() == [
        ["✓ Слушатель"],
        ["◀ В главное меню"],
    ]
    link = await link_of(session_factory, 1003)
    assert link is not None
    assert link.account.active_role == "listener"
    harness.assert_no_errors()


async def test_help_for_a_linked_user_follows_the_role(harness: BotHarness) -> None:
    await harness.send(1005, "/menu")
    shown = await harness.press(1005, "❓ Помощь")
    assert "Вы вошли как Морозов Игорь Викторович, роль «Руководитель ОО»" in shown.text
    assert "одобряет или отменяет заявки" in shown.text
    assert shown.buttons() == [["◀ В главное меню"]]
    reply = await harness.send(1007, "/help")
    assert "Включить в группу" in reply.text
    assert "/logout — отвязать Telegram" in reply.text
    back = await harness.press(1005, "◀ В главное меню")
    assert back.buttons()[0] == ["📥 Заявки (0 новых)"]
    harness.assert_no_errors()


async def test_logout_keeps_a_portal_token_of_another_account_offered_for_a_switch(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    token = await mint(session_factory, NEW_LISTENER, clock)
    await harness.send(1003, f"/start {token}")  # asks to switch; the token waits
    await harness.send(1003, "/logout")
    await harness.press(1003, "Да, отвязать")
    reply = await harness.send(STRANGER, f"/start {token}")
    assert reply.text.startswith(CONSENT_TITLE)
    link = await account_link(session_factory, NEW_LISTENER)
    assert link is not None
    assert link.user_id == STRANGER


async def test_a_link_to_a_card_is_not_taken_for_a_link_token(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with session_factory() as session:
        session.add(factories.application(39744, 3, 10))
        await session.commit()
    for _ in range(6):
        reply = await harness.send(STRANGER, "/start app_39744")
        assert "привяжите Telegram к своей учётной записи" in reply.text  # the unlinked welcome
    card = await harness.send(1001, "/start app_39744")
    assert "39744" in card.text
    async with session_factory() as session:
        since = factories.T0 - timedelta(days=1)
        assert await Repositories(session).links.count_failures("telegram", STRANGER, since) == 0
    harness.assert_no_errors()
