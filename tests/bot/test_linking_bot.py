"""Linking in the chat, in each messenger through the real front end and its double: portal-first
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
from tests.chats import Chat, TelegramChat
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
    mint,
    outbox_rows,
    revoke,
    token_rows,
)

pytestmark = pytest.mark.usefixtures("seeded")

CONSENT_TITLE = "Согласие на обработку персональных данных"
SIGNED_IN_DIRECTOR = f"Вы вошли как {NEW_DIRECTOR_NAME}, роль «Руководитель ОО»."
MOVE_TITLE = "Разрешить привязку к другому {messenger}-аккаунту?"
# The director of the reported takeover, bound to person 1005 in the seed.
OWNER_ACCOUNT, OWNER, OWNER_NAME = 5, 1005, "Морозов Игорь Викторович"


@pytest.fixture(autouse=True)
async def new_accounts(seeded: None, session_factory: async_sessionmaker[AsyncSession]) -> None:
    await add_new_accounts(session_factory)


async def assert_still_bound(chat: Chat) -> None:
    link = await account_link(chat.session_factory, OWNER_ACCOUNT)
    assert link is not None
    assert (link.user_id, link.chat_id) == (chat.user_id(OWNER), chat.chat_id(OWNER))


async def assert_bound_to(chat: Chat, account_id: int, person: int) -> None:
    """The account is bound to the person's user in the chat's messenger."""
    link = await account_link(chat.session_factory, account_id)
    assert link is not None
    assert link.user_id == chat.user_id(person)


def no_commands(chat: Chat, person: int) -> bool:
    """The person's chat has no command menu of its own (MAX has none at all)."""
    return not isinstance(chat, TelegramChat) or chat.commands(person) is None


async def test_portal_link_binds_shows_the_consent_then_the_menu(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    token = await mint(session_factory, NEW_DIRECTOR, clock)
    await chat.start(STRANGER, token)
    signed_in, consent = chat.bot_messages(STRANGER)[-2:]
    assert signed_in.text == SIGNED_IN_DIRECTOR
    assert consent.text.startswith(CONSENT_TITLE)
    assert "ГБУ ДПО «Челябинский институт развития образования»" in consent.text
    assert consent.buttons() == [["Ознакомился"]]
    link = await chat.binding(STRANGER)
    assert link is not None
    assert (link.account_id, link.account.active_role, link.account.consent_at) == (
        NEW_DIRECTOR,
        "director",
        None,
    )
    assert (link.user_id, link.chat_id) == (chat.user_id(STRANGER), chat.chat_id(STRANGER))

    clock.advance(minutes=2)
    menu = await chat.press(STRANGER, "Ознакомился")
    assert menu.message_id == consent.message_id  # edited in place
    assert f"Вы вошли как {NEW_DIRECTOR_NAME}, роль «Руководитель ОО»" in menu.text
    assert menu.buttons()[0] == ["📥 Заявки (0 новых)"]
    link = await chat.binding(STRANGER)
    assert link is not None
    assert (link.account.consent_at, link.account.consent_version) == (clock.now(), CONSENT_VERSION)
    if isinstance(chat, TelegramChat):  # MAX has no per-chat command menu
        commands = chat.api.commands_for({"type": "chat", "chat_id": STRANGER})
        assert [c["command"] for c in commands or []] == ["menu", "profile", "help", "logout"]
        assert commands is not None
        assert commands[0]["description"] == "Главное меню: заявки педагогов"
    chat.assert_no_errors()


@pytest.mark.every_backend  # expiry compares stored times
async def test_used_expired_unknown_and_malformed_tokens_get_distinct_answers(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    chat.add_user(STRANGER_2, "Второй")
    used = await mint(session_factory, NEW_DIRECTOR, clock)
    await chat.start(STRANGER, used)
    answers = {
        "used": await chat.start(STRANGER_2, used),
        "unknown": await chat.start(STRANGER_2, new_token()),
        "malformed": await chat.start(STRANGER_2, "abc-123"),
    }
    expiring = await mint(session_factory, NEW_LISTENER, clock)
    clock.advance(minutes=10)
    answers["expired"] = await chat.start(STRANGER_2, expiring)

    assert "уже использована" in answers["used"].text
    assert "не найдена" in answers["unknown"].text
    assert "повреждена" in answers["malformed"].text
    assert "Срок действия ссылки для входа истёк: она действует 10 мин." in answers["expired"].text
    texts = {kind: answer.text for kind, answer in answers.items()}
    assert len(set(texts.values())) == 4
    for text in texts.values():  # each says how to get a new link
        assert "Получите новую ссылку в модуле «Организация ДПО»" in text
        assert "Войти через Госуслуги" not in text  # no OIDC provider configured here
    assert await chat.binding(STRANGER_2) is None
    assert (await account_link(session_factory, NEW_LISTENER)) is None
    chat.assert_no_errors()


@pytest.mark.every_backend  # expiry compares stored times
async def test_a_token_is_valid_until_the_last_second_of_its_ttl(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    token = await mint(session_factory, NEW_LISTENER, clock)
    clock.advance(minutes=9, seconds=59)
    await chat.start(STRANGER, token)
    link = await chat.binding(STRANGER)
    assert link is not None
    assert link.account_id == NEW_LISTENER


async def test_a_bot_first_token_is_not_accepted_in_start(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    from services.linking import mint_bot_token

    async with session_factory() as session:
        minted = await mint_bot_token(
            Repositories(session),
            MessengerUser(chat.messenger, chat.user_id(STRANGER), chat.chat_id(STRANGER)),
            ttl=timedelta(minutes=10),
            clock=clock,
        )
        await session.commit()
    reply = await chat.start(STRANGER, minted.token)
    assert "не найдена" in reply.text
    assert await chat.binding(STRANGER) is None


@pytest.mark.every_backend  # throttling counts stored times
async def test_five_failures_in_a_minute_throttle_the_user_on_every_replica(
    chat: Chat,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> None:
    for attempt in range(5):
        clock.advance(seconds=5)
        reply = await chat.start(STRANGER, new_token() if attempt % 2 else "x")
        assert "Слишком много" not in reply.text
    good = await mint(session_factory, NEW_DIRECTOR, clock)

    # Another replica of the bot (its own front end) over the same database.
    async with chat.another() as replica:
        reply = await replica.start(STRANGER, good)
    assert "Слишком много неудачных попыток входа. Подождите минуту" in reply.text
    assert await chat.binding(STRANGER) is None

    # Other users are not affected.
    other = await mint(session_factory, NEW_LISTENER, clock)
    chat.add_user(STRANGER_2, "Второй")
    reply = await chat.start(STRANGER_2, other)
    assert reply.text.startswith(CONSENT_TITLE)

    # A minute after the first failures the window has moved on; the throttled attempt did not
    # count, so the still-valid token works.
    clock.advance(seconds=40)
    reply = await chat.start(STRANGER, good)
    assert reply.text.startswith(CONSENT_TITLE)
    link = await chat.binding(STRANGER)
    assert link is not None
    assert link.account_id == NEW_DIRECTOR
    chat.assert_no_errors()


@pytest.mark.every_backend  # throttling counts stored times
async def test_four_failures_do_not_throttle(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    for _ in range(4):
        await chat.start(STRANGER, new_token())
    token = await mint(session_factory, NEW_DIRECTOR, clock)
    reply = await chat.start(STRANGER, token)
    assert reply.text.startswith(CONSENT_TITLE)


async def test_an_account_without_roles_is_not_bound(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    token = await mint(session_factory, NO_ROLES, clock)
    reply = await chat.start(STRANGER, token)
    assert "нет ни одной роли" in reply.text
    assert await chat.binding(STRANGER) is None


async def test_a_linked_user_confirms_switching_to_another_account(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    token = await mint(session_factory, NEW_LISTENER, clock)
    question = await chat.start(1003, token)
    assert "привязан к учётной записи <b>Войсковая Юлия Олеговна</b>" in (question.markup or "")
    assert f"Перейти на учётную запись <b>{NEW_LISTENER_NAME}</b>?" in (question.markup or "")
    assert question.buttons() == [["Да, сменить учётную запись"], ["Отмена"]]
    link = await chat.binding(1003)
    assert link is not None
    assert link.account_id == 3  # nothing changes before the answer

    await chat.press(1003, "Да, сменить учётную запись")
    assert chat.message(1003, question.message_id).text == (
        f"Вы вошли как {NEW_LISTENER_NAME}, роль «Слушатель»."
    )
    assert chat.last(1003).text.startswith(CONSENT_TITLE)
    link = await chat.binding(1003)
    assert link is not None
    assert (link.account_id, link.account.consent_at) == (NEW_LISTENER, None)
    assert await account_link(session_factory, 3) is None
    # The person switched in this very chat: no message about it through the outbox.
    assert not [r for r in await outbox_rows(session_factory) if r.kind == UNLINKED_KIND]
    chat.assert_no_errors()


async def test_a_linked_user_may_keep_the_account_and_the_token_stays_valid(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    token = await mint(session_factory, NEW_LISTENER, clock)
    await chat.start(1003, token)
    kept = await chat.press(1003, "Отмена")
    assert kept.text == "Хорошо, остаётесь в учётной записи Войсковая Юлия Олеговна."
    link = await chat.binding(1003)
    assert link is not None
    assert link.account_id == 3

    reply = await chat.start(STRANGER, token)
    assert reply.text.startswith(CONSENT_TITLE)
    chat.assert_no_errors()


async def test_a_forged_or_stale_switch_button_changes_nothing(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    token = await mint(session_factory, NEW_LISTENER, clock)
    question = await chat.start(1003, token)
    token_id = (await token_rows(session_factory))[-1].id
    # Another user forges the button with the same token id.
    message = await chat.send(1004, "/menu")
    forged = LinkIntent(action=LinkAction.SWITCH, token=token_id).pack()
    await chat.press_data(1004, forged, message.message_id)
    assert chat.last(1004).text == ("Запрос на смену учётной записи больше не действует.")
    link = await chat.binding(1004)
    assert link is not None
    assert link.account_id == 4

    # The question outlives the token.
    clock.advance(minutes=11)
    await chat.press(1003, "Да, сменить учётную запись", question.message_id)
    assert "Срок действия ссылки для входа истёк" in chat.last(1003).text
    link = await chat.binding(1003)
    assert link is not None
    assert link.account_id == 3
    chat.assert_no_errors()


async def test_a_leaked_link_of_a_bound_account_moves_nothing_and_the_owner_denies(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    """The takeover as reported: a leaked portal link of a director bound to their Telegram,
    redeemed by someone else, moved the binding at once, and he approved an application. Now
    nothing moves: the owner is asked in their own chat, names the asker by @username and id,
    and says no."""
    await factories.store(session_factory, factories.application(900, 6, 20))
    chat.add_user(STRANGER, OWNER_NAME, username="intruder")
    token = await mint(session_factory, OWNER_ACCOUNT, clock)

    reply = await chat.start(STRANGER, token)
    assert f"уже привязана к другому {chat.name}-аккаунту" in reply.text
    assert "Ждём его ответа" in reply.text
    assert "Запрос действует до 01.09.2026 11:10." in reply.text  # 06:00 UTC + 10 min, local
    assert OWNER_NAME not in reply.text  # the holder of a link learns nothing of the account
    await assert_still_bound(chat)
    # He cannot act meanwhile: a forged «Одобрить» is refused, the application stays new.
    if chat.can_press(reply):
        forged = AppIntent(action=AppAction.APPROVE, number=900).pack()
        await chat.press_data(STRANGER, forged, reply.message_id)
        assert chat.answer() == chat.alert(STALE_BUTTON)
    async with session_factory() as session:
        assert await Repositories(session).applications.current_status(900) == "new"

    await chat.deliver()
    question = chat.last(OWNER)
    assert question.text.startswith(say(MOVE_TITLE, chat.messenger))
    asker = f"@intruder (id {chat.user_id(STRANGER)})"
    assert f"в другом {chat.name}-аккаунте: {asker}." in question.text
    assert OWNER_NAME not in question.text  # not the name the asker gave himself
    assert question.buttons() == [["✅ Разрешить", "🚫 Запретить"]]
    # A second holder of the leaked link: the link is taken.
    chat.add_user(STRANGER_2, "Второй")
    assert "уже использована" in (await chat.start(STRANGER_2, token)).text

    denied = await chat.press(OWNER, "🚫 Запретить")
    assert denied.message_id == question.message_id
    assert denied.text.startswith("Хорошо, учётная запись остаётся привязанной к этому чату")
    await chat.deliver()
    assert chat.last(STRANGER).text == say(MOVE_OUTCOMES[MoveOutcome.DENIED], chat.messenger)
    await assert_still_bound(chat)
    assert await chat.binding(STRANGER) is None
    assert "уже использована" in (await chat.start(STRANGER, token)).text
    # The owner's «Разрешить» afterwards, from the old question: stale.
    allow = LinkIntent(
        action=LinkAction.ALLOW_MOVE, token=(await token_rows(session_factory))[0].id
    )
    await chat.press_data(OWNER, allow.pack(), question.message_id)
    assert chat.last(OWNER).text == MOVE_STALE
    await assert_still_bound(chat)
    chat.assert_no_errors()


async def test_the_owner_allows_and_the_binding_moves(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await factories.store(session_factory, factories.application(900, 6, 20))
    chat.add_user(STRANGER, "Новый телефон", username="morozov_new")
    token = await mint(session_factory, OWNER_ACCOUNT, clock)
    await chat.start(STRANGER, token)
    await chat.deliver()
    question = chat.last(OWNER)
    assert "@morozov_new" in question.text

    allowed = await chat.press(OWNER, "✅ Разрешить")
    assert allowed.message_id == question.message_id
    assert allowed.text == say(
        MOVE_ALLOWED_OWNER, chat.messenger, account=f"@morozov_new (id {chat.user_id(STRANGER)})"
    )
    link = await account_link(session_factory, OWNER_ACCOUNT)
    assert link is not None
    assert (link.user_id, link.chat_id, link.account.consent_at) == (
        chat.user_id(STRANGER),
        chat.chat_id(STRANGER),
        None,
    )
    assert await chat.binding(OWNER) is None
    assert no_commands(chat, OWNER)
    # The new chat hears the outcome, then the consent, through the outbox.
    rows = await outbox_rows(session_factory)
    assert [(r.kind, r.chat_id) for r in rows if r.state == "pending"] == [
        (MOVE_OUTCOME_KIND, chat.chat_id(STRANGER)),
        (CONSENT_KIND, chat.chat_id(STRANGER)),
    ]
    await chat.deliver()
    signed_in, consent = [m for m in chat.history(STRANGER) if m.from_bot][-2:]
    assert signed_in.text == (
        f"Владелец прежнего {chat.name}-аккаунта разрешил перенос привязки. Вы вошли как "
        f"{OWNER_NAME}, роль «Руководитель ОО»."
    )
    assert consent.text.startswith(CONSENT_TITLE)
    menu = await chat.press(STRANGER, "Ознакомился")
    assert menu.message_id == consent.message_id
    assert menu.buttons()[0] == ["📥 Заявки (1 новая)"]
    # The old chat is unlinked: its /menu is the unlinked one.
    assert f"Сначала привяжите {chat.name}" in (await chat.send(OWNER, "покажи заявки")).text
    chat.assert_no_errors()


@pytest.mark.every_backend  # expiry compares stored times
async def test_an_unanswered_request_expires_with_the_token(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    token = await mint(session_factory, OWNER_ACCOUNT, clock)
    await chat.start(STRANGER, token)
    await chat.deliver()
    question = chat.last(OWNER)
    clock.advance(minutes=9)
    async with session_factory() as session:
        assert await expire_move_requests(Repositories(session), clock.now()) == 0
    clock.advance(minutes=1)
    # Two dispatchers look at once: one notice.
    for _ in range(2):
        async with session_factory() as session:
            await expire_move_requests(Repositories(session), clock.now())
            await session.commit()
    await chat.deliver()
    expired = [m for m in chat.history(STRANGER) if m.from_bot][-1]
    assert expired.text == say(MOVE_OUTCOMES[MoveOutcome.EXPIRED], chat.messenger)
    assert [m.text for m in chat.history(STRANGER)].count(expired.text) == 1
    await chat.press(OWNER, "✅ Разрешить", question.message_id)
    assert chat.message(OWNER, question.message_id).text == MOVE_STALE
    await assert_still_bound(chat)
    assert "уже использована" in (await chat.start(STRANGER, token)).text

    # The owner answering after the expiry, before any sweep, closes it too.
    token = await mint(session_factory, OWNER_ACCOUNT, clock)
    await chat.start(STRANGER, token)
    await chat.deliver()
    clock.advance(minutes=10)
    await chat.press(OWNER, "✅ Разрешить")
    assert chat.last(OWNER).text == MOVE_EXPIRED_OWNER
    await chat.deliver()
    assert chat.last(STRANGER).text == say(MOVE_OUTCOMES[MoveOutcome.EXPIRED], chat.messenger)
    await assert_still_bound(chat)
    chat.assert_no_errors()


async def test_forged_answers_to_a_move_request_change_nothing(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    token = await mint(session_factory, OWNER_ACCOUNT, clock)
    waiting = await chat.start(STRANGER, token)
    token_id = (await token_rows(session_factory))[0].id
    allow = LinkIntent(action=LinkAction.ALLOW_MOVE, token=token_id).pack()
    # The asker himself, and another bound user, press «Разрешить» with forged data.
    if chat.can_press(waiting):
        await chat.press_data(STRANGER, allow, waiting.message_id)
        assert chat.last(STRANGER).text == MOVE_STALE
    menu = await chat.send(1001, "/menu")
    await chat.press_data(1001, allow, menu.message_id)
    assert chat.message(1001, menu.message_id).text == MOVE_STALE
    assert await chat.binding(STRANGER) is None
    await assert_still_bound(chat)
    link = await chat.binding(1001)
    assert link is not None
    assert link.account_id == 1
    # The request still stands for the owner.
    await chat.deliver()
    await chat.press(OWNER, "✅ Разрешить")
    await assert_bound_to(chat, OWNER_ACCOUNT, STRANGER)
    chat.assert_no_errors()


async def test_a_blocked_owner_cannot_be_asked_revocation_is_needed(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await chat.block(OWNER)  # the chat is marked blocked
    token = await mint(session_factory, OWNER_ACCOUNT, clock)
    reply = await chat.start(STRANGER, token)
    assert "спросить его владельца нельзя: в том чате бот заблокирован" in reply.text
    assert f"«Профиль» → «Отключить {chat.name}»" in reply.text
    assert not [r for r in await outbox_rows(session_factory) if r.kind == MOVE_REQUEST_KIND]
    await assert_still_bound(chat)
    # The web module revokes the binding (DELETE /api/v1/accounts/{id}/<messenger>); a new link
    # then binds at once.
    await revoke(session_factory, OWNER_ACCOUNT, clock)
    assert "не найдена" in (await chat.start(STRANGER, token)).text
    fresh = await mint(session_factory, OWNER_ACCOUNT, clock)
    assert (await chat.start(STRANGER, fresh)).text.startswith(CONSENT_TITLE)
    await assert_bound_to(chat, OWNER_ACCOUNT, STRANGER)
    chat.assert_no_errors()


async def test_revocation_while_the_owner_is_asked_tells_the_asker(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    token = await mint(session_factory, OWNER_ACCOUNT, clock)
    await chat.start(STRANGER, token)
    assert "Ждём его ответа" in (await chat.start(STRANGER, token)).text  # again
    await chat.deliver()
    question = chat.last(OWNER)
    await revoke(session_factory, OWNER_ACCOUNT, clock)
    await chat.deliver()
    assert chat.last(STRANGER).text == say(MOVE_OUTCOMES[MoveOutcome.RELEASED], chat.messenger)
    await chat.press(OWNER, "✅ Разрешить", question.message_id)
    assert await account_link(session_factory, OWNER_ACCOUNT) is None
    assert await chat.binding(STRANGER) is None
    chat.assert_no_errors()


async def test_a_user_bound_elsewhere_logs_out_before_asking_for_a_bound_account(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    token = await mint(session_factory, OWNER_ACCOUNT, clock)
    reply = await chat.start(1003, token)
    assert f"Сначала отвяжите этот {chat.name} командой /logout" in reply.text
    assert not [r for r in await outbox_rows(session_factory) if r.kind == MOVE_REQUEST_KIND]
    # Offered a switch first, then the account got bound elsewhere: the same answer.
    other = await mint(session_factory, NEW_LISTENER, clock)
    await chat.start(1003, other)
    async with session_factory() as session:
        await chat.bind(session, NEW_LISTENER, STRANGER, "listener")
        await session.commit()
    switched = await chat.press(1003, "Да, сменить учётную запись")
    assert f"Сначала отвяжите этот {chat.name} командой /logout" in switched.text
    link = await chat.binding(1003)
    assert link is not None
    assert link.account_id == 3
    await chat.send(1003, "/logout")
    await chat.press(1003, "Да, отвязать")
    assert "Ждём его ответа" in (await chat.start(1003, token)).text
    chat.assert_no_errors()


@pytest.mark.every_backend  # throttling counts stored times
async def test_many_users_guessing_are_throttled_overall(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    """The guessing as reported: 120 guesses from 30 users, 4 each (under the per-user limit),
    went unthrottled. Now after THROTTLE_OVERALL_LIMIT failures in a minute everyone waits."""
    guessers = range(3000, 3030)
    for user_id in guessers:
        chat.add_user(user_id, "Угадывающий")
    answers = []
    for _ in range(4):
        for user_id in guessers:
            answers.append((await chat.start(user_id, new_token())).text)
    refused = [a for a in answers if a.startswith("Сейчас у бота слишком много неудачных")]
    assert len(refused) == 120 - THROTTLE_OVERALL_LIMIT
    assert all("не найдена" in a for a in answers[:THROTTLE_OVERALL_LIMIT])
    # Meanwhile a valid link is not even looked at, for anyone.
    token = await mint(session_factory, NEW_DIRECTOR, clock)
    reply = await chat.start(STRANGER, token)
    assert reply.text.startswith("Сейчас у бота слишком много неудачных попыток входа")
    assert await chat.binding(STRANGER) is None
    clock.advance(minutes=1)
    assert (await chat.start(STRANGER, token)).text.startswith(CONSENT_TITLE)
    chat.assert_no_errors()


async def test_redeeming_a_token_of_ones_own_account_again(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    token = await mint(session_factory, 3, clock)
    await chat.start(1003, token)
    already, menu = chat.bot_messages(1003)[-2:]
    assert already.text == "Вы уже вошли как Войсковая Юлия Олеговна, роль «Слушатель»."
    assert menu.buttons()[0] == ["📄 Мои заявки"]
    reply = await chat.start(STRANGER, token)
    assert "уже использована" in reply.text


async def test_logout_asks_then_unlinks_and_forgets_the_chat(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    menu = await chat.send(1003, "/menu")
    question = await chat.send(1003, "/logout")
    assert f"Отвязать {chat.name} от учётной записи <b>Войсковая Юлия Олеговна</b>?" in (
        question.markup or ""
    )
    kept = await chat.press(1003, "Отмена")
    assert kept.text == f"Хорошо, {chat.name} остаётся привязанным."
    assert await chat.binding(1003) is not None

    pending = await mint(session_factory, 3, clock)
    await chat.send(1003, "/logout")
    done = await chat.press(1003, "Да, отвязать")
    assert done.text.startswith(f"{chat.name} отвязан от учётной записи")
    assert await chat.binding(1003) is None
    assert await token_rows(session_factory) == []  # the unused token of the account is revoked
    assert [r for r in await outbox_rows(session_factory) if r.chat_id == chat.chat_id(1003)] == []
    assert no_commands(chat, 1003)
    reply = await chat.start(1003, pending)
    assert "не найдена" in reply.text

    # A button of the old menu is answered, not left spinning.
    await chat.press(1003, "❓ Помощь", menu.message_id)
    assert chat.answer() == chat.alert("Кнопка устарела, откройте меню заново: /menu")
    reply = await chat.send(1003, "/logout")
    assert reply.text.startswith(f"{chat.name} не привязан")
    chat.assert_no_errors()


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
    chat: Chat, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    token = await mint(session_factory, NEW_DIRECTOR, clock)
    await chat.start(STRANGER, token)
    consent = chat.last(STRANGER)

    commands = {f"/{c.command}" for c in DEFAULT_COMMANDS}
    for role in Role:
        commands |= {f"/{c.command}" for c in chat_commands(role)}
    commands -= {"/logout"}  # withdrawing needs no consent (tested below)
    commands |= {"/menu", "/start", "/cancel", "/start app_39744", "Покажи заявки", "39744"}
    for text in sorted(commands):
        before = len(chat.history(STRANGER))
        reply = await chat.send(STRANGER, text)
        bot_replies = [m for m in chat.history(STRANGER)[before:] if m.from_bot]
        assert len(bot_replies) == 1, text
        # One consent message, pointed to: not the whole text again for every message.
        assert reply.text.startswith("Чтобы продолжить, прочитайте согласие"), text
        assert reply.buttons() == [["📄 Открыть согласие"]], text
    consents = [m for m in chat.history(STRANGER) if m.text.startswith(CONSENT_TITLE)]
    assert consents == [chat.message(STRANGER, consent.message_id)]
    opened = await chat.press(STRANGER, "📄 Открыть согласие")
    assert opened.message_id == reply.message_id  # the pointer becomes the consent, in place
    assert opened.text.startswith(CONSENT_TITLE)
    assert opened.buttons() == [["Ознакомился"]]

    buttons = [MenuIntent(action=action).pack() for action in MenuAction]
    buttons += [AppIntent(action=action, number=39744).pack() for action in AppAction]
    buttons += [ListIntent(action=action).pack() for action in ListAction]
    buttons += [ProfileIntent(action=ProfileAction.ROLES).pack()]
    buttons += [ProfileIntent(action=ProfileAction.SET_ROLE, role=role).pack() for role in Role]
    for data in buttons:
        answered = len(chat.answers())
        await chat.press_data(STRANGER, data, consent.message_id)
        assert chat.answers()[answered:] == [
            chat.toast("Сначала ознакомьтесь с согласием на обработку персональных данных")
        ], data
        shown = chat.message(STRANGER, consent.message_id)
        assert shown.text.startswith(CONSENT_TITLE), data
        assert shown.buttons() == [["Ознакомился"]], data

    link = await chat.binding(STRANGER)
    assert link is not None
    assert (link.account.consent_at, link.account.active_role) == (None, "director")
    assert no_commands(chat, STRANGER)

    # /logout works before the consent: a person who does not agree can leave.
    await chat.send(STRANGER, "/logout")
    await chat.press(STRANGER, "Да, отвязать")
    assert await chat.binding(STRANGER) is None
    chat.assert_no_errors()


async def test_a_new_consent_version_asks_again(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    async with session_factory() as session:
        link = await Repositories(session).links.by_user(chat.messenger, chat.user_id(1003))
        assert link is not None
        link.account.consent_version = "0"
        await session.commit()
    reply = await chat.send(1003, "/menu")
    assert reply.text.startswith(CONSENT_TITLE)
    menu = await chat.press(1003, "Ознакомился")
    assert menu.buttons()[0] == ["📄 Мои заявки"]
    # «Ознакомился» pressed again on the old screen just opens the menu.
    await chat.press_data(1003, "c:ok", reply.message_id)
    assert chat.message(1003, reply.message_id).buttons()[0] == ["📄 Мои заявки"]
    chat.assert_no_errors()


async def test_profile_shows_the_account_and_roles_switch_in_place(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    menu = await chat.send(1001, "/menu")
    profile = await chat.press(1001, "👤 Профиль / сменить роль")
    assert profile.message_id == menu.message_id
    assert profile.text == (
        "Профиль\n\n"
        "ФИО: Петров Пётр Петрович\n"
        "Организация: МАОУ «СОШ № 10» г. Челябинска\n"
        "Роли: Руководитель ОО, Слушатель\n"
        "Активная роль: Руководитель ОО"
    )
    roles = await chat.press(1001, "🔁 Сменить роль")
    assert roles.buttons() == [["✓ Руководитель ОО"], ["Слушатель"], ["◀ В главное меню"]]

    switched = await chat.press(1001, "Слушатель")
    assert switched.message_id == menu.message_id
    assert "Вы вошли как Петров Пётр Петрович, роль «Слушатель»" in switched.text
    assert switched.buttons()[0] == ["📄 Мои заявки"]
    assert chat.answer() == chat.toast("Роль: Слушатель")
    link = await chat.binding(1001)
    assert link is not None
    assert link.account.active_role == "listener"
    if isinstance(chat, TelegramChat):  # MAX has no per-chat command menu
        commands = chat.api.commands_for({"type": "chat", "chat_id": 1001})
        assert commands is not None
        assert commands[0] == {"command": "menu", "description": "Главное меню: мои заявки"}

    # The next update acts in the new role.
    profile = await chat.send(1001, "/profile")
    assert profile.text.endswith("Активная роль: Слушатель")
    await chat.press(1001, "🔁 Сменить роль")
    back = await chat.press(1001, "Руководитель ОО")
    assert back.buttons()[0] == ["📥 Заявки (0 новых)"]
    chat.assert_no_errors()


async def test_a_forged_role_is_refused(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    menu = await chat.send(1003, "/menu")
    forged = ProfileIntent(action=ProfileAction.SET_ROLE, role=Role.DIRECTOR).pack()
    await chat.press_data(1003, forged, menu.message_id)
    assert chat.answer() == chat.alert("У вас нет этой роли в модуле «Организация ДПО»")
    assert chat.message(1003, menu.message_id).buttons() == [
        ["✓ Слушатель"],
        ["◀ В главное меню"],
    ]
    link = await chat.binding(1003)
    assert link is not None
    assert link.account.active_role == "listener"
    chat.assert_no_errors()


async def test_help_for_a_linked_user_follows_the_role(chat: Chat) -> None:
    await chat.send(1005, "/menu")
    shown = await chat.press(1005, "❓ Помощь")
    assert "Вы вошли как Морозов Игорь Викторович, роль «Руководитель ОО»" in shown.text
    assert "одобряет или отменяет заявки" in shown.text
    assert shown.buttons() == [["◀ В главное меню"]]
    reply = await chat.send(1007, "/help")
    assert "Включить в группу" in reply.text
    assert f"/logout — отвязать {chat.name}" in reply.text
    back = await chat.press(1005, "◀ В главное меню")
    assert back.buttons()[0] == ["📥 Заявки (0 новых)"]
    chat.assert_no_errors()


async def test_logout_keeps_a_portal_token_of_another_account_offered_for_a_switch(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    token = await mint(session_factory, NEW_LISTENER, clock)
    await chat.start(1003, token)  # asks to switch; the token waits
    await chat.send(1003, "/logout")
    await chat.press(1003, "Да, отвязать")
    reply = await chat.start(STRANGER, token)
    assert reply.text.startswith(CONSENT_TITLE)
    await assert_bound_to(chat, NEW_LISTENER, STRANGER)


async def test_a_link_to_a_card_is_not_taken_for_a_link_token(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await factories.store(session_factory, factories.application(39744, 3, 10))
    for _ in range(6):
        reply = await chat.start(STRANGER, "app_39744")
        assert f"привяжите {chat.name} к своей учётной записи" in reply.text  # the unlinked welcome
    card = await chat.start(1001, "app_39744")
    assert "39744" in card.text
    async with session_factory() as session:
        since = factories.T0 - timedelta(days=1)
        failures = Repositories(session).links.count_failures
        assert await failures(chat.messenger, chat.user_id(STRANGER), since) == 0
    chat.assert_no_errors()
