"""Pushes rendered at send time, by kind, and delivered in each messenger through its double."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.conversation.intents import AppAction, AppIntent
from bot.conversation.pushes import RENDERERS, PushContext, render
from bot.screens.markup import plain, utf16_length
from bot.screens.screen import Screen
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
from tests.chats import Chat, labels
from tests.harness import BotHarness
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


async def delivered_then(
    chat: Chat,
    notifier: OutboxWorker[Screen],
    who: Actor,
    action: Action,
    comment: str | None = None,
    **fields: object,
) -> None:
    """A new application (with `fields`) and its push delivered; two seconds on, `who` acts."""
    await add_application(chat.session_factory, chat.clock, **fields)
    await notifier.drain()
    chat.clock.advance(seconds=2)
    await act(chat.session_factory, chat.clock, who, action, comment)


async def outbox_rows(session_factory: async_sessionmaker[AsyncSession]) -> list[OutboxMessage]:
    async with session_factory() as session:
        return list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


@pytest.fixture
def notifier(chat: Chat) -> OutboxWorker[Screen]:
    return chat.notifier()


@pytest.fixture
def hidden(chat: Chat) -> OutboxWorker[Screen]:
    return chat.notifier(chat.settings_with(HIDE_NAMES_IN_PUSHES=True))


pytestmark = pytest.mark.usefixtures("seeded")


async def test_new_application_goes_to_the_directors_with_decision_buttons(
    chat: Chat, notifier: OutboxWorker[Screen], clock: ManualClock
) -> None:
    await add_application(chat.session_factory, clock)
    assert await notifier.drain() == 2
    for director in (1001, 1002):
        [push] = chat.bot_messages(director)
        assert push.text.splitlines() == [
            f"📥 Новая заявка №{NUMBER}",
            "Заявитель: Войсковая Юлия Олеговна",
            f"Программа: {factories.PROGRAM}",
            "Даты обучения: 06.09.2023 - 10.09.2023",
            "Статус: «Не обработана»",
        ]
        assert push.buttons() == [["✅ Одобрить", "❌ Отменить"], ["Подробнее"]]
        assert (
            push.payload("✅ Одобрить") == AppIntent(action=AppAction.APPROVE, number=NUMBER).pack()
        )
        assert (
            push.payload("❌ Отменить") == AppIntent(action=AppAction.CANCEL, number=NUMBER).pack()
        )
        assert push.payload("Подробнее") == AppIntent(action=AppAction.OPEN, number=NUMBER).pack()
    assert chat.bot_messages(1005) == []  # the other school's director
    rows = await outbox_rows(chat.session_factory)
    assert [(row.state, row.sent_at) for row in rows] == [("sent", clock.now())] * 2
    # Telegram's message ids are kept (an integer each); MAX's, strings, are not.
    kept = [str(chat.bot_messages(d)[0].message_id) for d in (1001, 1002)]
    assert [row.message_id for row in rows] == (
        kept if chat.messenger == "telegram" else [None] * 2
    )


OWN_APPLICATION = (
    "Эту заявку подали вы сами: руководитель не принимает решение по своей заявке — её "
    "рассмотрят сотрудники ЦОПМ / ГБУ ДПО «ЧИРО»."
)


@pytest.mark.parametrize("decides_own", [False, True], ids=["own-refused", "own-allowed"])
async def test_a_directors_own_application_offers_him_no_decision_he_would_be_refused(
    chat: Chat, clock: ManualClock, decides_own: bool
) -> None:
    """The director of organisation 10 is also a listener and applies himself: his push offers
    the decisions only where DIRECTOR_DECIDES_OWN lets him make them, else says why and offers
    the card; the other director's push has them either way."""
    bot_settings = {"DIRECTOR_DECIDES_OWN": decides_own}
    await add_application(chat.session_factory, clock, applicant_id=1)
    assert await chat.notifier(chat.settings_with(**bot_settings)).drain() == 2
    [own] = chat.bot_messages(1001)
    [other] = chat.bot_messages(1002)
    decisions = [["✅ Одобрить", "❌ Отменить"], ["Подробнее"]]
    assert other.buttons() == decisions
    assert OWN_APPLICATION not in other.text
    if decides_own:
        assert own.buttons() == decisions
        assert OWN_APPLICATION not in own.text
    else:
        assert own.buttons() == [["Подробнее"]]
        assert own.text.splitlines()[-2:] == ["Статус: «Не обработана»", OWN_APPLICATION]
    async with chat.another(**bot_settings) as bot:
        card = await bot.press_on(own, "Подробнее")
        assert card.text.startswith(f"Заявка №{NUMBER}")
        assert ("✅ Одобрить" in labels(card)) is decides_own  # the card agrees with the push
        bot.assert_no_errors()


async def test_hidden_names_leave_number_programme_and_status_only(
    chat: Chat, hidden: OutboxWorker[Screen], clock: ManualClock
) -> None:
    await add_application(chat.session_factory, clock, program="Диагностика")
    await hidden.drain()
    [push] = chat.bot_messages(1001)
    assert push.text.splitlines() == [
        f"📥 Новая заявка №{NUMBER}",
        "Программа: Диагностика",
        "Статус: «Не обработана»",
    ]
    assert push.buttons() == [["✅ Одобрить", "❌ Отменить"], ["Подробнее"]]

    clock.advance(seconds=2)
    await act(chat.session_factory, clock, actor(1, "director"), Action.APPROVE, "Петрову ок")
    clock.advance(seconds=2)
    await act(chat.session_factory, clock, actor(3, "listener"), Action.COMMENT, "Спасибо, Пётр")
    await hidden.drain()
    clock.advance(seconds=2)
    await hidden.drain()
    [status] = chat.bot_messages(1003)
    assert status.text.splitlines() == [
        f"🔔 Заявка №{NUMBER}: статус изменён",
        "Программа: Диагностика",
        "Статус: «Не обработана» → «Подтверждена руководителем ОО»",
        "К заявке есть комментарий — откройте «Подробнее».",
    ]
    assert chat.bot_messages(1001)[-1].text.splitlines() == [
        f"💬 Новый комментарий к заявке №{NUMBER}",
        "Программа: Диагностика",
        "Статус: «Подтверждена руководителем ОО»",
        "Текст комментария — в карточке заявки, откройте «Подробнее».",
    ]
    assert chat.sent_texts()
    for text in chat.sent_texts():
        for name in ("Войсковая", "Петров", "Сидорова", "Пётр"):
            assert name not in text


async def test_a_push_shows_the_application_as_it_is_when_sent(
    chat: Chat, notifier: OutboxWorker[Screen], clock: ManualClock
) -> None:
    await add_application(chat.session_factory, clock)
    await act(chat.session_factory, clock, actor(2, "director"), Action.CANCEL)
    await notifier.drain()
    [push] = chat.bot_messages(1001)
    assert push.text.splitlines()[-2:] == ["Статус: «Отменена»", "Заявка уже обработана."]
    assert push.buttons() == [["Подробнее"]]


async def test_status_change_reaches_the_applicant_with_the_comment(
    chat: Chat, notifier: OutboxWorker[Screen], clock: ManualClock
) -> None:
    await delivered_then(chat, notifier, actor(1, "director"), Action.APPROVE, "Ждём <вас> & др.")
    assert await notifier.drain() == 1
    [push] = chat.bot_messages(1003)
    assert push.text.splitlines() == [
        f"🔔 Заявка №{NUMBER}: статус изменён",
        f"Программа: {factories.PROGRAM}",
        "Статус: «Не обработана» → «Подтверждена руководителем ОО»",
        "Кто: Петров Пётр Петрович, Руководитель ОО",
        "Комментарий: Ждём <вас> & др.",
    ]
    assert push.markup is not None
    assert "Ждём &lt;вас&gt; &amp; др." in push.markup
    assert push.buttons() == [["Подробнее"]]
    # The deciding director is not told of their own decision, the other one is not either.
    assert len(chat.bot_messages(1001)) == 1
    assert len(chat.bot_messages(1002)) == 1


async def test_staff_decision_reaches_applicant_and_directors(
    chat: Chat, notifier: OutboxWorker[Screen], clock: ManualClock
) -> None:
    await delivered_then(
        chat, notifier, actor(7, "staff"), Action.INCLUDE, "Группа 5", status="approved"
    )
    assert await notifier.drain() == 3
    applicant = chat.bot_messages(1003)[-1].text.splitlines()
    director = chat.bot_messages(1002)[-1].text.splitlines()
    assert "Статус: «Подтверждена руководителем ОО» → «Включен в группу»" in applicant
    assert "Заявитель: Войсковая Юлия Олеговна" not in applicant
    assert director[:2] == [
        f"🔔 Заявка №{NUMBER}: статус изменён",
        "Заявитель: Войсковая Юлия Олеговна",
    ]
    assert "Кто: Иванова Ольга Николаевна, Сотрудник ЦОПМ / ГБУ ДПО «ЧИРО»" in director
    assert "Комментарий: Группа 5" in director


async def test_comment_reaches_the_other_side(
    chat: Chat, notifier: OutboxWorker[Screen], clock: ManualClock
) -> None:
    await delivered_then(chat, notifier, actor(3, "listener"), Action.COMMENT, "Когда?")
    assert await notifier.drain() == 2
    text = chat.bot_messages(1001)[-1].text.splitlines()
    assert text == [
        f"💬 Новый комментарий к заявке №{NUMBER}",
        "Заявитель: Войсковая Юлия Олеговна",
        f"Программа: {factories.PROGRAM}",
        "Статус: «Не обработана»",
        "Кто: Войсковая Юлия Олеговна, Слушатель",
        "Комментарий: Когда?",
    ]
    assert chat.bot_messages(1003) == []


async def test_web_module_changes_are_attributed_to_it(
    chat: Chat, notifier: OutboxWorker[Screen], clock: ManualClock
) -> None:
    await add_application(chat.session_factory, clock)
    async with chat.session_factory() as session:
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
    [push] = chat.bot_messages(1003)
    assert "Изменено в модуле «Организация ДПО»" in push.text.splitlines()


async def test_long_values_keep_the_push_within_the_messengers_limits(
    chat: Chat, notifier: OutboxWorker[Screen], clock: ManualClock
) -> None:
    await delivered_then(
        chat, notifier, actor(1, "director"), Action.COMMENT, "&" * 1000, program="Программа " * 500
    )
    assert await notifier.drain() == 1
    [push] = chat.bot_messages(1003)
    assert len(push.text) <= chat.text_limit
    assert "Программа: Программа Программа" in push.text
    # Escaped, a thousand «&» would be 5,000 characters as sent (MAX counts its 4,000 of the
    # text as sent, as far as anyone can tell): the comment is cut, the whole one is on the card.
    [line] = [line for line in push.text.splitlines() if line.startswith("Комментарий: ")]
    assert line.endswith("…")
    assert set(line.removeprefix("Комментарий: ").removesuffix("…")) == {"&"}
    assert plain("<b>a&amp;b</b>") == "a&b"


EMOJI_NAME = "👩\u200d🏫" * 85  # 255 characters, 425 UTF-16 code units (Telegram's unit)


async def test_a_push_full_of_emoji_is_not_refused(
    chat: Chat, notifier: OutboxWorker[Screen], clock: ManualClock
) -> None:
    """Every value at its longest in emoji beyond the BMP, which Telegram counts twice: the
    applicant cancels with a comment, and the directors' push (name, programme, who, comment)
    still fits the messenger's limit in UTF-16 code units (4096 in Telegram; MAX's 4,000, which
    the MAX double counts in the same units), so the double accepts it."""
    async with chat.session_factory() as session:
        await session.execute(update(Account).where(Account.id == 3).values(full_name=EMOJI_NAME))
        await session.commit()
    await add_application(chat.session_factory, clock, program="📚" * 4000)
    assert await notifier.drain() == 2
    clock.advance(seconds=2)
    applicant = replace(actor(3, "listener"), full_name=EMOJI_NAME)
    await act(chat.session_factory, clock, applicant, Action.CANCEL, "🎉" * 1000)
    assert await notifier.drain() == 2
    for director in (1001, 1002):
        new, cancelled = chat.bot_messages(director)
        for push in (new, cancelled):
            assert utf16_length(push.text) <= chat.text_limit
            assert EMOJI_NAME in push.text
        assert "🎉" * 100 + "…" in cancelled.text  # the comment cut, not the push refused
    rows = await outbox_rows(chat.session_factory)
    assert {row.state for row in rows} == {"sent"}


async def test_rows_that_can_no_longer_be_sent_fail_with_a_reason(
    chat: Chat, notifier: OutboxWorker[Screen], clock: ManualClock
) -> None:
    await add_application(chat.session_factory, clock)  # to directors 1 and 2
    await add_application(chat.session_factory, clock, 2, applicant_id=6, organization_id=20)
    async with chat.session_factory() as session:
        # Application 2 is withdrawn from the web module; director 2's account is removed;
        # director 1 mutes pushes.
        await session.execute(delete(Application).where(Application.number == 2))
        await session.execute(delete(Account).where(Account.id == 2))
        link = await Repositories(session).links.by_user(chat.messenger, chat.user_id(1001))
        assert link is not None
        link.account.muted = True
        session.add(
            OutboxMessage(
                channel=chat.messenger,
                kind="no_such_kind",
                chat_id=chat.chat_id(1003),
                payload={},
                state="pending",
                attempts=0,
                available_at=clock.now(),
                created_at=clock.now(),
            )
        )
        await session.commit()
    await notifier.drain()
    assert chat.sent_texts() == []
    rows = await outbox_rows(chat.session_factory)
    assert {(row.state, row.attempts) for row in rows} == {("failed", 0)}
    reasons = sorted(row.last_error or "" for row in rows)
    assert reasons == [
        "application 2 no longer exists",
        "no renderer for kind 'no_such_kind'",
        "the recipient muted notifications",
        "the recipient's account no longer exists",
    ]


async def test_renderers_form_a_registry_other_features_extend(harness: BotHarness) -> None:
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
    chat: Chat, notifier: OutboxWorker[Screen], clock: ManualClock
) -> None:
    async with chat.session_factory() as session:
        link = await session.scalar(select(Binding).where(Binding.account_id == 2))
        assert link is not None
        link.account.consent_at = None
        await session.commit()
    await add_application(chat.session_factory, clock)
    await notifier.drain()
    assert len(chat.bot_messages(1001)) == 1
    assert chat.bot_messages(1002) == []
    rows = await outbox_rows(chat.session_factory)
    assert rows[1].last_error == "the recipient has not accepted the personal-data consent"


async def test_the_decision_buttons_of_a_delivered_push_work(
    chat: Chat, notifier: OutboxWorker[Screen], clock: ManualClock
) -> None:
    await add_application(chat.session_factory, clock)
    await notifier.drain()
    [first] = chat.bot_messages(1001)
    card = await chat.press(1002, "Подробнее")
    assert card.text.startswith(f"Заявка №{NUMBER}")
    await chat.press(1001, "✅ Одобрить", first.message_id)
    done = await chat.press(1001, "Без комментария")
    assert done.text.startswith(f"✅ Заявка №{NUMBER} одобрена.")
    clock.advance(seconds=2)
    assert await notifier.drain() == 1
    [told] = chat.bot_messages(1003)
    assert "«Не обработана» → «Подтверждена руководителем ОО»" in told.text
    chat.assert_no_errors()


async def test_a_chat_whose_binding_was_revoked_is_told(
    chat: Chat, notifier: OutboxWorker[Screen], clock: ManualClock
) -> None:
    async with chat.session_factory() as session:
        assert await unlink_account(Repositories(session), 3, clock=clock) != []
        await session.commit()
    assert await notifier.drain() == 1
    [told] = chat.bot_messages(1003)
    assert told.text == render_unlinked({"reason": UnlinkReason.REVOKED.value}, chat.messenger)
    [row] = await outbox_rows(chat.session_factory)
    assert (row.kind, row.state) == ("unlinked", "sent")
