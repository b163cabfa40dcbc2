"""Pushes rendered at send time, by kind, and delivered through the Bot API double."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.conversation.intents import AppAction, AppIntent
from bot.conversation.pushes import RENDERERS, PushContext, render
from bot.screens.markup import plain, utf16_length
from bot.screens.screen import Screen
from bot.settings import Settings
from bot.telegram.sender import build_notifier
from bot.texts.linking import render_unlinked
from services.applications import Done, perform_action
from services.clock import ManualClock
from services.domain import Action, Actor
from services.linking import UnlinkReason, unlink_account
from services.notifications import notify_event, notify_new_application
from services.outbox import OutboxWorker, Undeliverable
from storage.models import Account, Application, Binding, OutboxMessage
from storage.repositories import Repositories
from tests import factories
from tests.fakes.bot_api import FakeBotAPI, Message
from tests.harness import BotHarness, test_settings
from tests.integration.test_domain import actor

NUMBER = 39744


async def add_application(
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    number: int = NUMBER,
    applicant_id: int = 3,
    organization_id: int = 10,
    **fields: object,
) -> None:
    """A new application, with its push to the directors, as the web module would add it."""
    async with session_factory() as session:
        application = factories.application(number, applicant_id, organization_id, **fields)
        session.add(application)
        await session.flush()
        await notify_new_application(Repositories(session), application, now=clock.now())
        await session.commit()


async def act(
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    who: Actor,
    action: Action,
    comment: str | None = None,
    number: int = NUMBER,
) -> None:
    async with session_factory() as session:
        outcome = await perform_action(
            Repositories(session), who, number, action, comment=comment, clock=clock
        )
        assert isinstance(outcome, Done), outcome
        await session.commit()


async def outbox_rows(session_factory: async_sessionmaker[AsyncSession]) -> list[OutboxMessage]:
    async with session_factory() as session:
        return list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def bot_messages(api: FakeBotAPI, chat_id: int) -> list[Message]:
    return [message for message in api.chat(chat_id) if message.from_bot]


def notifier_for(
    harness: BotHarness, clock: ManualClock, settings: Settings | None = None
) -> OutboxWorker[Screen]:
    return build_notifier(harness.bot, harness.session_factory, settings or harness.settings, clock)


@pytest.fixture
def notifier(harness: BotHarness, clock: ManualClock) -> OutboxWorker[Screen]:
    return notifier_for(harness, clock)


@pytest.fixture
def hidden(harness: BotHarness, clock: ManualClock) -> OutboxWorker[Screen]:
    settings = test_settings(harness.api, harness.settings.DATABASE_URL, HIDE_NAMES_IN_PUSHES=True)
    return notifier_for(harness, clock, settings)


pytestmark = pytest.mark.usefixtures("seeded")


async def test_new_application_goes_to_the_directors_with_decision_buttons(
    harness: BotHarness, notifier: OutboxWorker[Screen], clock: ManualClock
) -> None:
    await add_application(harness.session_factory, clock)
    assert await notifier.drain() == 2
    for chat in (1001, 1002):
        [push] = bot_messages(harness.api, chat)
        assert push.text.splitlines() == [
            f"📥 Новая заявка №{NUMBER}",
            "Заявитель: Войсковая Юлия Олеговна",
            f"Программа: {factories.PROGRAM}",
            "Даты обучения: 06.09.2023 - 10.09.2023",
            "Статус: «Не обработана»",
        ]
        assert push.buttons() == [["✅ Одобрить", "❌ Отменить"], ["Подробнее"]]
        assert (
            push.button("✅ Одобрить")["callback_data"]
            == AppIntent(action=AppAction.APPROVE, number=NUMBER).pack()
        )
        assert (
            push.button("❌ Отменить")["callback_data"]
            == AppIntent(action=AppAction.CANCEL, number=NUMBER).pack()
        )
        assert (
            push.button("Подробнее")["callback_data"]
            == AppIntent(action=AppAction.OPEN, number=NUMBER).pack()
        )
    assert bot_messages(harness.api, 1005) == []  # the other school's director
    rows = await outbox_rows(harness.session_factory)
    assert [(row.state, row.sent_at) for row in rows] == [("sent", clock.now())] * 2
    assert [row.message_id for row in rows] == [
        str(bot_messages(harness.api, 1001)[0].message_id),
        str(bot_messages(harness.api, 1002)[0].message_id),
    ]


async def test_hidden_names_leave_number_programme_and_status_only(
    harness: BotHarness, hidden: OutboxWorker[Screen], clock: ManualClock
) -> None:
    await add_application(harness.session_factory, clock, program="Диагностика")
    await hidden.drain()
    [push] = bot_messages(harness.api, 1001)
    assert push.text.splitlines() == [
        f"📥 Новая заявка №{NUMBER}",
        "Программа: Диагностика",
        "Статус: «Не обработана»",
    ]
    assert push.buttons() == [["✅ Одобрить", "❌ Отменить"], ["Подробнее"]]

    clock.advance(seconds=2)
    await act(harness.session_factory, clock, actor(1, "director"), Action.APPROVE, "Петрову ок")
    clock.advance(seconds=2)
    await act(harness.session_factory, clock, actor(3, "listener"), Action.COMMENT, "Спасибо, Пётр")
    await hidden.drain()
    clock.advance(seconds=2)
    await hidden.drain()
    [status] = bot_messages(harness.api, 1003)
    assert status.text.splitlines() == [
        f"🔔 Заявка №{NUMBER}: статус изменён",
        "Программа: Диагностика",
        "Статус: «Не обработана» → «Подтверждена руководителем ОО»",
        "К заявке есть комментарий — откройте «Подробнее».",
    ]
    assert bot_messages(harness.api, 1001)[-1].text.splitlines() == [
        f"💬 Новый комментарий к заявке №{NUMBER}",
        "Программа: Диагностика",
        "Статус: «Подтверждена руководителем ОО»",
        "Текст комментария — в карточке заявки, откройте «Подробнее».",
    ]
    for message in harness.api.calls_of("sendMessage"):
        for name in ("Войсковая", "Петров", "Сидорова", "Пётр"):
            assert name not in message.params["text"]


async def test_a_push_shows_the_application_as_it_is_when_sent(
    harness: BotHarness, notifier: OutboxWorker[Screen], clock: ManualClock
) -> None:
    await add_application(harness.session_factory, clock)
    await act(harness.session_factory, clock, actor(2, "director"), Action.CANCEL)
    await notifier.drain()
    [push] = bot_messages(harness.api, 1001)
    assert push.text.splitlines()[-2:] == ["Статус: «Отменена»", "Заявка уже обработана."]
    assert push.buttons() == [["Подробнее"]]


async def test_status_change_reaches_the_applicant_with_the_comment(
    harness: BotHarness, notifier: OutboxWorker[Screen], clock: ManualClock
) -> None:
    await add_application(harness.session_factory, clock)
    await notifier.drain()
    clock.advance(seconds=2)
    await act(
        harness.session_factory, clock, actor(1, "director"), Action.APPROVE, "Ждём <вас> & др."
    )
    assert await notifier.drain() == 1
    [push] = bot_messages(harness.api, 1003)
    assert push.text.splitlines() == [
        f"🔔 Заявка №{NUMBER}: статус изменён",
        f"Программа: {factories.PROGRAM}",
        "Статус: «Не обработана» → «Подтверждена руководителем ОО»",
        "Кто: Петров Пётр Петрович, Руководитель ОО",
        "Комментарий: Ждём <вас> & др.",
    ]
    assert push.html is not None
    assert "Ждём &lt;вас&gt; &amp; др." in push.html
    assert push.buttons() == [["Подробнее"]]
    # The deciding director is not told of their own decision, the other one is not either.
    assert len(bot_messages(harness.api, 1001)) == 1
    assert len(bot_messages(harness.api, 1002)) == 1


async def test_staff_decision_reaches_applicant_and_directors(
    harness: BotHarness, notifier: OutboxWorker[Screen], clock: ManualClock
) -> None:
    await add_application(harness.session_factory, clock, status="approved")
    await notifier.drain()
    clock.advance(seconds=2)
    await act(harness.session_factory, clock, actor(7, "staff"), Action.INCLUDE, "Группа 5")
    assert await notifier.drain() == 3
    applicant = bot_messages(harness.api, 1003)[-1].text.splitlines()
    director = bot_messages(harness.api, 1002)[-1].text.splitlines()
    assert "Статус: «Подтверждена руководителем ОО» → «Включен в группу»" in applicant
    assert "Заявитель: Войсковая Юлия Олеговна" not in applicant
    assert director[:2] == [
        f"🔔 Заявка №{NUMBER}: статус изменён",
        "Заявитель: Войсковая Юлия Олеговна",
    ]
    assert "Кто: Иванова Ольга Николаевна, Сотрудник ЦОПМ / ГБУ ДПО «ЧИРО»" in director
    assert "Комментарий: Группа 5" in director


async def test_comment_reaches_the_other_side(
    harness: BotHarness, notifier: OutboxWorker[Screen], clock: ManualClock
) -> None:
    await add_application(harness.session_factory, clock)
    await notifier.drain()
    clock.advance(seconds=2)
    await act(harness.session_factory, clock, actor(3, "listener"), Action.COMMENT, "Когда?")
    assert await notifier.drain() == 2
    text = bot_messages(harness.api, 1001)[-1].text.splitlines()
    assert text == [
        f"💬 Новый комментарий к заявке №{NUMBER}",
        "Заявитель: Войсковая Юлия Олеговна",
        f"Программа: {factories.PROGRAM}",
        "Статус: «Не обработана»",
        "Кто: Войсковая Юлия Олеговна, Слушатель",
        "Комментарий: Когда?",
    ]
    assert bot_messages(harness.api, 1003) == []


async def test_web_module_changes_are_attributed_to_it(
    harness: BotHarness, notifier: OutboxWorker[Screen], clock: ManualClock
) -> None:
    await add_application(harness.session_factory, clock)
    async with harness.session_factory() as session:
        repo = Repositories(session)
        application = await repo.applications.get(NUMBER)
        assert application is not None
        event = await repo.events.add(
            application_number=NUMBER,
            actor_account_id=None,
            actor_name="Модуль «Организация ДПО»",
            actor_role=None,
            action="cancel",
            from_status="new",
            to_status="cancelled",
            comment=None,
            source="api",
            created_at=clock.now(),
        )
        await notify_event(repo, application, event, actor_role=None, now=clock.now())
        await session.commit()
    await notifier.drain()
    [push] = bot_messages(harness.api, 1003)
    assert "Изменено в модуле «Организация ДПО»" in push.text.splitlines()


async def test_long_values_keep_the_push_within_telegram_limits(
    harness: BotHarness, notifier: OutboxWorker[Screen], clock: ManualClock
) -> None:
    await add_application(harness.session_factory, clock, program="Программа " * 500)
    await notifier.drain()
    clock.advance(seconds=2)
    await act(harness.session_factory, clock, actor(1, "director"), Action.COMMENT, "&" * 1000)
    assert await notifier.drain() == 1
    [push] = bot_messages(harness.api, 1003)
    assert len(push.text) <= 4096
    assert "Программа: Программа Программа" in push.text
    # Escaped, a thousand «&» would be 5,000 characters as sent (MAX counts its 4,000 of the
    # text as sent, as far as anyone can tell): the comment is cut, the whole one is on the card.
    [line] = [line for line in push.text.splitlines() if line.startswith("Комментарий: ")]
    assert line.endswith("…")
    assert set(line.removeprefix("Комментарий: ").removesuffix("…")) == {"&"}
    assert plain("<b>a&amp;b</b>") == "a&b"


EMOJI_NAME = "👩\u200d🏫" * 85  # 255 characters, 425 UTF-16 code units (Telegram's unit)


async def test_a_push_full_of_emoji_is_not_refused_by_telegram(
    harness: BotHarness, notifier: OutboxWorker[Screen], clock: ManualClock
) -> None:
    """Every value at its longest in emoji beyond the BMP, which Telegram counts twice: the
    applicant cancels with a comment, and the directors' push (name, programme, who, comment)
    still fits 4096 code units, so the double, counting as Telegram does, accepts it."""
    async with harness.session_factory() as session:
        await session.execute(update(Account).where(Account.id == 3).values(full_name=EMOJI_NAME))
        await session.commit()
    await add_application(harness.session_factory, clock, program="📚" * 4000)
    assert await notifier.drain() == 2
    clock.advance(seconds=2)
    applicant = replace(actor(3, "listener"), full_name=EMOJI_NAME)
    await act(harness.session_factory, clock, applicant, Action.CANCEL, "🎉" * 1000)
    assert await notifier.drain() == 2
    for director in (1001, 1002):
        new, cancelled = bot_messages(harness.api, director)
        for push in (new, cancelled):
            assert utf16_length(push.text) <= 4096
            assert EMOJI_NAME in push.text
        assert "🎉" * 100 + "…" in cancelled.text  # the comment cut, not the push refused
    rows = await outbox_rows(harness.session_factory)
    assert {row.state for row in rows} == {"sent"}


async def test_rows_that_can_no_longer_be_sent_fail_with_a_reason(
    harness: BotHarness, notifier: OutboxWorker[Screen], clock: ManualClock
) -> None:
    await add_application(harness.session_factory, clock)  # to directors 1 and 2
    await add_application(harness.session_factory, clock, 2, applicant_id=6, organization_id=20)
    async with harness.session_factory() as session:
        # Application 2 is withdrawn from the web module; director 2's account is removed;
        # director 1 mutes pushes.
        await session.execute(delete(Application).where(Application.number == 2))
        await session.execute(delete(Account).where(Account.id == 2))
        link = await Repositories(session).links.by_user("telegram", 1001)
        assert link is not None
        link.account.muted = True
        session.add(
            OutboxMessage(
                channel="telegram",
                kind="no_such_kind",
                chat_id=1003,
                payload={},
                state="pending",
                attempts=0,
                available_at=clock.now(),
                created_at=clock.now(),
            )
        )
        await session.commit()
    await notifier.drain()
    assert harness.api.calls_of("sendMessage") == []
    rows = await outbox_rows(harness.session_factory)
    assert {(row.state, row.attempts) for row in rows} == {("failed", 0)}
    reasons = sorted(row.last_error or "" for row in rows)
    assert reasons == [
        "application 2 no longer exists",
        "no renderer for kind 'no_such_kind'",
        "the recipient muted notifications",
        "the recipient's account no longer exists",
    ]


async def test_renderers_form_a_registry_other_features_extend(
    harness: BotHarness, clock: ManualClock
) -> None:
    async def farewell(context: PushContext) -> Screen:
        return Screen(f"До свидания, чат {context.row.chat_id}")

    RENDERERS["test_farewell"] = farewell
    try:
        async with harness.session_factory() as session:
            row = OutboxMessage(kind="test_farewell", chat_id=5, account_id=None, payload={})
            push = await render(PushContext(Repositories(session), row, harness.settings))
            assert push == Screen("До свидания, чат 5")
            row.kind = "status_changed"
            with pytest.raises(Undeliverable, match="no longer exists"):
                await render(PushContext(Repositories(session), row, harness.settings))
    finally:
        del RENDERERS["test_farewell"]
    assert {"new_application", "status_changed", "comment", "digest"} <= RENDERERS.keys()


async def test_pushes_wait_for_the_personal_data_consent(
    harness: BotHarness, notifier: OutboxWorker[Screen], clock: ManualClock
) -> None:
    async with harness.session_factory() as session:
        link = await session.scalar(select(Binding).where(Binding.account_id == 2))
        assert link is not None
        link.account.consent_at = None
        await session.commit()
    await add_application(harness.session_factory, clock)
    await notifier.drain()
    assert len(bot_messages(harness.api, 1001)) == 1
    assert bot_messages(harness.api, 1002) == []
    rows = await outbox_rows(harness.session_factory)
    assert rows[1].last_error == "the recipient has not accepted the personal-data consent"


async def test_the_decision_buttons_of_a_delivered_push_work(
    harness: BotHarness, notifier: OutboxWorker[Screen], clock: ManualClock
) -> None:
    await add_application(harness.session_factory, clock)
    await notifier.drain()
    [first] = bot_messages(harness.api, 1001)
    card = await harness.press(1002, "Подробнее")
    assert card.text.startswith(f"Заявка №{NUMBER}")
    await harness.press(1001, "✅ Одобрить", first.message_id)
    done = await harness.press(1001, "Без комментария")
    assert done.text.startswith(f"✅ Заявка №{NUMBER} одобрена.")
    clock.advance(seconds=2)
    assert await notifier.drain() == 1
    [told] = bot_messages(harness.api, 1003)
    assert "«Не обработана» → «Подтверждена руководителем ОО»" in told.text
    harness.assert_no_errors()


async def test_a_chat_whose_binding_was_revoked_is_told(
    harness: BotHarness, notifier: OutboxWorker[Screen], clock: ManualClock
) -> None:
    async with harness.session_factory() as session:
        assert await unlink_account(Repositories(session), 3, clock=clock) != []
        await session.commit()
    assert await notifier.drain() == 1
    [told] = bot_messages(harness.api, 1003)
    assert told.text == render_unlinked({"reason": UnlinkReason.REVOKED.value}, "telegram")
    [row] = await outbox_rows(harness.session_factory)
    assert (row.kind, row.state) == ("unlinked", "sent")
