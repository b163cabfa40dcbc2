"""Linking in the chat through the real Dispatcher and the Bot API double: portal-first
`/start <token>` with every refusal, throttling, switching and moving bindings, /logout,
the consent gate in front of every router, the profile and role switching."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.app import DEFAULT_COMMANDS
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
from bot.telegram.commands import chat_commands
from bot.texts.linking import CONSENT_VERSION, UNLINKED, render_unlinked
from services.clock import ManualClock
from services.domain import Role
from services.linking import UNLINKED_KIND, UnlinkReason, new_token, unlink_account
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


@pytest.fixture(autouse=True)
async def new_accounts(seeded: None, session_factory: async_sessionmaker[AsyncSession]) -> None:
    await add_new_accounts(session_factory)


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
    assert (link.account_id, link.active_role, link.consent_at) == (NEW_DIRECTOR, "director", None)

    clock.advance(minutes=2)
    menu = await harness.press(STRANGER, "Ознакомился")
    assert menu.message_id == consent.message_id  # edited in place
    assert f"Вы вошли как {NEW_DIRECTOR_NAME}, роль «Руководитель ОО»" in menu.text
    assert menu.buttons()[0] == ["📥 Заявки (0 новых)"]
    link = await link_of(session_factory, STRANGER)
    assert link is not None
    assert (link.consent_at, link.consent_version) == (clock.now(), CONSENT_VERSION)
    commands = harness.api.commands_for(scope(STRANGER))
    assert command_names(commands) == ["start", "profile", "help", "logout"]
    assert commands is not None
    assert commands[0]["description"] == "Главное меню: заявки педагогов"
    harness.assert_no_errors()


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
    clock.advance(minutes=15)
    answers["expired"] = await harness.send(STRANGER_2, f"/start {expiring}")

    assert "уже использована" in answers["used"].text
    assert "не найдена" in answers["unknown"].text
    assert "повреждена" in answers["malformed"].text
    assert "Срок действия ссылки для входа истёк: она действует 15 мин." in answers["expired"].text
    texts = {kind: answer.text for kind, answer in answers.items()}
    assert len(set(texts.values())) == 4
    for text in texts.values():  # each says how to get a new link
        assert "Получите новую ссылку в модуле «Организация ДПО»" in text
        assert "Войти через Госуслуги" not in text  # no OIDC provider configured here
    assert await link_of(session_factory, STRANGER_2) is None
    assert (await account_link(session_factory, NEW_LISTENER)) is None
    harness.assert_no_errors()


async def test_a_token_is_valid_until_the_last_second_of_its_ttl(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    token = await mint(session_factory, NEW_LISTENER, clock)
    clock.advance(minutes=14, seconds=59)
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
            telegram_user_id=STRANGER,
            chat_id=STRANGER,
            telegram_name="Незнакомец",
            ttl=timedelta(minutes=15),
            clock=clock,
        )
        await session.commit()
    reply = await harness.send(STRANGER, f"/start {minted.token}")
    assert "не найдена" in reply.text
    assert await link_of(session_factory, STRANGER) is None


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
    assert (link.account_id, link.consent_at) == (NEW_LISTENER, None)
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
    clock.advance(minutes=16)
    await harness.press(1003, "Да, сменить учётную запись", question.message_id)
    assert "Срок действия ссылки для входа истёк" in harness.api.last_bot_message(1003).text
    link = await link_of(session_factory, 1003)
    assert link is not None
    assert link.account_id == 3
    harness.assert_no_errors()


async def test_linking_an_account_from_another_telegram_user_moves_it_and_tells_the_old_chat(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    async with session_factory() as session:
        session.add(factories.application(900, 3, 10))
        await session.flush()
        Repositories(session).outbox.add(
            channel="telegram",
            kind="status_changed",
            account_id=3,
            chat_id=1003,
            application_number=900,
            event_id=None,
            payload={},
            state="pending",
            attempts=0,
            available_at=clock.now(),
            created_at=clock.now(),
        )
        await session.commit()
    token = await mint(session_factory, 3, clock)
    reply = await harness.send(STRANGER, f"/start {token}")
    assert reply.text.startswith(CONSENT_TITLE)
    link = await account_link(session_factory, 3)
    assert link is not None
    assert link.telegram_user_id == STRANGER
    assert await link_of(session_factory, 1003) is None

    rows = await outbox_rows(session_factory)
    assert [(r.kind, r.chat_id, r.account_id, r.payload) for r in rows] == [
        (UNLINKED_KIND, 1003, None, {"reason": "moved"})
    ]  # the old chat's pending push is gone, the news of the move is waiting
    assert render_unlinked(rows[0].payload) == UNLINKED[UnlinkReason.MOVED]
    assert "привязана к другому Telegram-аккаунту" in render_unlinked(rows[0].payload)
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
    assert removed is not None
    assert removed.chat_id == 1003
    assert missing is None
    rows = await outbox_rows(session_factory)
    assert [(r.kind, r.chat_id, r.payload) for r in rows] == [
        (UNLINKED_KIND, 1003, {"reason": "revoked"})
    ]
    assert "снята в модуле" in render_unlinked(rows[0].payload)


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
        assert reply.text.startswith(CONSENT_TITLE), text
        assert reply.buttons() == [["Ознакомился"]], text

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
    assert (link.consent_at, link.active_role) == (None, "director")
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
        link = await Repositories(session).links.by_telegram_user(1003)
        assert link is not None
        link.consent_version = "0"
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
    assert link.active_role == "listener"
    commands = harness.api.commands_for(scope(1001))
    assert commands is not None
    assert commands[0] == {"command": "start", "description": "Главное меню: мои заявки"}

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
    assert link.active_role == "listener"
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
    assert link.telegram_user_id == STRANGER


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
        assert await Repositories(session).links.count_failures(STRANGER, since) == 0
    harness.assert_no_errors()
