"""The director's screens when the world moves: stale cards, a restart, pushes, forged buttons,
«message is not modified», over-long texts."""

from __future__ import annotations

import pytest
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.conversation.intents import AppAction, AppIntent, StatusCode
from bot.screens.markup import utf16_length
from services.applications import Done, perform_action
from services.clock import ManualClock
from services.domain import Action, Actor, Role
from storage.models import Account, Organization
from storage.repositories import Repositories
from tests import factories
from tests.bot.test_director import last_answer, open_card, open_list, press_on
from tests.director_data import (
    DIRECTOR,
    LISTENER,
    NEWEST_NEW,
    OTHER_DIRECTOR,
    OTHER_ORG_NUMBER,
    seed_applications,
    snapshot,
    status_of,
)
from tests.fakes.bot_api import Message, parse_html
from tests.harness import BotHarness

pytestmark = pytest.mark.every_backend  # over-long values meet the columns, which PostgreSQL checks

SECOND = Actor(2, "Сидорова Анна Ивановна", Role.DIRECTOR, frozenset({Role.DIRECTOR}), 10)
STALE = "Кнопка устарела, откройте меню заново: /menu"


@pytest.fixture
async def school(seeded: None, session_factory: async_sessionmaker[AsyncSession]) -> None:
    await seed_applications(session_factory)


async def decide_elsewhere(
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    number: int,
    action: Action,
) -> None:
    """The second director decides, outside this chat."""
    async with session_factory() as session:
        await perform_action(Repositories(session), SECOND, number, action, clock=clock)
        await session.commit()


async def pushed(harness: BotHarness, user: int, *buttons: tuple[str, AppIntent]) -> Message:
    """A message with buttons as the notifications' pushes carry them."""
    markup = InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=label, callback_data=data.pack())] for label, data in buttons
        ]
    )
    sent = await harness.bot.send_message(user, "Новая заявка", reply_markup=markup)
    return harness.api.message(user, sent.message_id)


@pytest.mark.usefixtures("school")
async def test_a_stale_card_is_redrawn_and_says_what_changed(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    card = await open_card(harness, NEWEST_NEW)
    await decide_elsewhere(session_factory, clock, NEWEST_NEW, Action.APPROVE)

    redrawn = await press_on(harness, card, "❌ Отменить")
    expected = (
        "ℹ️ Статус заявки изменился: было «Не обработана», теперь «Подтверждена руководителем ОО»."
    )
    assert last_answer(harness) == {"text": expected, "show_alert": True}
    assert redrawn.text.startswith(expected + "\n\nЗаявка №39737")
    assert "Статус: Подтверждена руководителем ОО" in redrawn.text
    assert "Изменил(а) статус: Сидорова Анна Ивановна (Руководитель ОО)" in redrawn.text
    assert redrawn.buttons()[0] == ["💬 Комментарии", "🕓 История"]  # no decisions left
    assert await status_of(session_factory, NEWEST_NEW) == "approved"
    harness.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_a_decision_on_a_prompt_gone_stale_loses_and_shows_the_current_status(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    card = await open_card(harness, NEWEST_NEW)
    await press_on(harness, card, "✅ Одобрить")
    await decide_elsewhere(session_factory, clock, NEWEST_NEW, Action.CANCEL)
    before = await snapshot(session_factory)

    redrawn = await press_on(harness, card, "Без комментария")
    message = "Заявка №39737 уже обработана: статус «Отменена»"
    assert last_answer(harness) == {"text": message, "show_alert": True}
    assert redrawn.text.startswith(message + "\n\nЗаявка №39737\nСтатус: Отменена")
    assert await snapshot(session_factory) == before

    # The same with a typed comment: the input ends, the card says what happened.
    await harness.send(DIRECTOR, "/start app_39736")
    await harness.press(DIRECTOR, "✅ Одобрить")
    await decide_elsewhere(session_factory, clock, 39736, Action.APPROVE)
    answer = await harness.send(DIRECTOR, "Одобряю")
    assert answer.text.startswith(
        "Заявка №39736 уже обработана: статус «Подтверждена руководителем ОО»"
    )
    assert "Изменил(а) статус: Сидорова Анна Ивановна" in answer.text
    assert "Комментарий: Одобряю" not in answer.text
    harness.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_a_card_from_before_a_restart_works_from_the_database(
    harness: BotHarness,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> None:
    card = await open_card(harness, NEWEST_NEW)
    other = await harness.send(DIRECTOR, "39736")
    await decide_elsewhere(session_factory, clock, 39736, Action.CANCEL)
    await harness.close()

    # A new process: a new Dispatcher with empty FSM storage over the same database.
    restarted = BotHarness(harness.api, harness.settings, session_factory, clock)
    try:
        redrawn = await press_on(restarted, other, "✅ Одобрить")
        assert redrawn.text.startswith("ℹ️ Статус заявки изменился: было «Не обработана»")
        assert "Статус: Отменена" in redrawn.text

        await press_on(restarted, card, "✅ Одобрить")
        approved = await press_on(restarted, card, "Без комментария")
        assert approved.text.startswith("✅ Заявка №39737 одобрена.")
        assert await status_of(session_factory, NEWEST_NEW) == "approved"
        back = await press_on(restarted, card, "◀ К списку")
        assert "Статус: все" in back.text
        restarted.assert_no_errors()
    finally:
        await restarted.close()


@pytest.mark.usefixtures("school")
async def test_buttons_of_a_push_work_from_any_message(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    push = await pushed(
        harness,
        DIRECTOR,
        ("✅ Одобрить", AppIntent(action=AppAction.APPROVE, number=NEWEST_NEW)),
        ("❌ Отменить", AppIntent(action=AppAction.CANCEL, number=39736)),
        ("Подробнее", AppIntent(action=AppAction.OPEN, number=39735)),
    )
    card = await press_on(harness, push, "Подробнее")
    assert card.text.startswith("Заявка №39735\nСтатус: Не обработана")

    push = await pushed(
        harness, DIRECTOR, ("❌ Отменить", AppIntent(action=AppAction.CANCEL, number=39736))
    )
    confirm = await press_on(harness, push, "❌ Отменить")
    assert confirm.text.startswith("Отменить заявку №39736?")

    push = await pushed(
        harness, DIRECTOR, ("✅ Одобрить", AppIntent(action=AppAction.APPROVE, number=NEWEST_NEW))
    )
    await press_on(harness, push, "✅ Одобрить")
    approved = await press_on(harness, push, "Без комментария")
    assert approved.text.startswith("✅ Заявка №39737 одобрена.")
    assert await status_of(session_factory, NEWEST_NEW) == "approved"

    # A push for an application decided meanwhile: refused with the reason, the card shown.
    late = await pushed(
        harness, DIRECTOR, ("✅ Одобрить", AppIntent(action=AppAction.APPROVE, number=NEWEST_NEW))
    )
    card = await press_on(harness, late, "✅ Одобрить")
    reason = "Заявка №39737 уже обработана: статус «Подтверждена руководителем ОО»"
    assert last_answer(harness) == {"text": reason, "show_alert": True}
    assert card.text.startswith(reason)
    harness.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_message_is_not_modified_is_success(harness: BotHarness) -> None:
    listing = await open_list(harness)
    calls = len(harness.api.calls_of("editMessageText"))
    same = await press_on(harness, listing, "• Не обработана")
    again = await press_on(harness, listing, "1/2")
    assert same.text == again.text == listing.text
    edits = harness.api.calls_of("editMessageText")[calls:]
    assert [call.description for call in edits] == [
        "Bad Request: message is not modified: specified new message content and reply markup "
        "are exactly the same as a current content and reply markup of the message"
    ] * 2
    harness.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_forged_and_foreign_presses_are_refused_and_change_nothing(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    before = await snapshot(session_factory)
    card = await open_card(harness, NEWEST_NEW)

    def forged(action: AppAction, number: int, status: StatusCode | None = None) -> str:
        return AppIntent(action=action, number=number, status=status).pack()

    # Another organisation's application, even with well-formed data.
    for action in AppAction:
        await harness.press_data(DIRECTOR, forged(action, OTHER_ORG_NUMBER), card.message_id)
        answer = last_answer(harness)
        assert answer["show_alert"] is True
        assert answer["text"] in ("Заявка №40001 не найдена или недоступна вам.", STALE)
    # The other organisation's director on this organisation's application.
    menu = await harness.send(OTHER_DIRECTOR, "/menu")
    await harness.press_data(
        OTHER_DIRECTOR,
        forged(AppAction.APPROVE_NO_COMMENT, NEWEST_NEW, StatusCode.NEW),
        menu.message_id,
    )
    assert last_answer(harness) == {
        "text": "Заявка №39737 не найдена или недоступна вам.",
        "show_alert": True,
    }
    # A listener (the applicant herself) pressing a director's button; an unlinked stranger.
    menu = await harness.send(LISTENER, "/menu")
    await harness.press_data(
        LISTENER, forged(AppAction.APPROVE_NO_COMMENT, NEWEST_NEW), menu.message_id
    )
    assert last_answer(harness) == {
        "text": "Действие «Одобрить» — для роли «Руководитель ОО»; у вас такой роли нет",
        "show_alert": True,
    }
    # A staff action: said plainly.
    await harness.press_data(
        DIRECTOR, forged(AppAction.INCLUDE, 39738, StatusCode.APPROVED), card.message_id
    )
    assert last_answer(harness) == {
        "text": (
            "Действие «Включить в группу» — для роли «Сотрудник ЦОПМ / ГБУ ДПО «ЧИРО»»; у вас "
            "такой роли нет"
        ),
        "show_alert": True,
    }
    # Malformed data, an unknown prefix, an id beyond the database's range.
    for data in [
        "a:ap:abc:0::n:0:0",
        "a2:zz:39737",
        "zz:1",
        f"a:an:{2**63}:0:n:n:0:0:0",
        "a:an:-39737:0:n:n:0:0:0",
        "al:s:n:-1:0:0",
    ]:
        await harness.press_data(DIRECTOR, data, card.message_id)
        assert last_answer(harness) == {"text": STALE, "show_alert": True}
    # A forged decision on an application already processed.
    await harness.press_data(
        DIRECTOR, forged(AppAction.CANCEL_NO_COMMENT, 39744, StatusCode.INCLUDED), card.message_id
    )
    assert last_answer(harness) == {
        "text": "Заявка №39744 уже обработана: статус «Включен в группу»",
        "show_alert": True,
    }
    assert await snapshot(session_factory) == before
    harness.assert_no_errors()


@pytest.mark.usefixtures("seeded")
async def test_over_long_fields_are_cut_without_breaking_html(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    long = "<Программа & «развитие»> " * 400  # 10,000 characters, every one HTML-special
    async with session_factory() as session:
        session.add(
            factories.application(
                777,
                3,
                10,
                program=long,
                description=long,
                listener_categories=long,
                competencies=long,
                dpo_organization=long,
                group=long[:500],
                study_form=long[:255],
            )
        )
        applicant = await session.get(Account, 3)  # through the ORM: the folded name with it
        assert applicant is not None
        applicant.full_name = "Я" * 200 + " <b>"
        await session.commit()
        for i in range(6):
            clock.advance(minutes=1)
            await perform_action(
                Repositories(session),
                SECOND,
                777,
                Action.COMMENT,
                comment=f"{i}" + "&<>" * 333,
                clock=clock,
            )
        await session.commit()

    card = await harness.send(DIRECTOR, "777")
    assert card.text.startswith("Заявка №777")
    assert len(card.text) <= 4096
    assert "…" in card.text
    assert "Программа: <Программа & «развитие»>" in card.text  # escaped, shown as typed
    parse_html(card.html or "")  # whole HTML, as Telegram checks it

    for label in ["🕓 История", "◀ К заявке", "💬 Комментарии (6)"]:
        screen = await harness.press(DIRECTOR, label)
        assert len(screen.text) <= 4096
    assert "…" in screen.text

    await harness.press(DIRECTOR, "◀ К заявке")
    await harness.press(DIRECTOR, "✅ Одобрить")
    approved = await harness.send(DIRECTOR, "Ок " + "<&>" * 300)
    assert approved.text.startswith("✅ Заявка №777 одобрена.")
    assert len(approved.text) <= 4096

    listing = await harness.send(DIRECTOR, "Я" * 150)
    assert "Найдено: 1" in listing.text
    assert all(len(label) <= 64 for row in listing.buttons() for label in row)
    harness.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_a_button_of_the_persons_other_role_acts_in_that_role_and_says_so(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """A director whose active role is «Слушатель» presses «Без комментария» on a prompt (or
    a push) sent for his role «Руководитель ОО»: the decision is made in that role, he is
    told so, and the role stays switched (the chat's commands follow)."""
    async with session_factory() as session:
        await session.execute(update(Account).where(Account.id == 1).values(active_role="listener"))
        await session.commit()
    menu = await harness.send(DIRECTOR, "/menu")
    await harness.press_data(DIRECTOR, "m:a", menu.message_id)
    own = harness.api.message(DIRECTOR, menu.message_id)
    assert own.text.startswith("📄 Мои заявки\nСтатус: все\n\nЗаявок с таким статусом нет.")
    decision = AppIntent(
        action=AppAction.APPROVE_NO_COMMENT, number=NEWEST_NEW, status=StatusCode.NEW
    )
    await harness.press_data(DIRECTOR, decision.pack(), menu.message_id)
    assert last_answer(harness) == {
        "text": "Роль переключена: «Руководитель ОО» — кнопка относится к ней",
    }
    card = harness.api.message(DIRECTOR, menu.message_id)
    assert card.text.startswith(f"✅ Заявка №{NEWEST_NEW} одобрена.")
    assert await status_of(session_factory, NEWEST_NEW) == "approved"
    async with session_factory() as session:
        link = await Repositories(session).links.by_user("telegram", DIRECTOR)
        assert link is not None
        assert link.account.active_role == "director"
    assert harness.api.commands_for({"type": "chat", "chat_id": DIRECTOR})
    harness.assert_no_errors()


@pytest.mark.usefixtures("seeded")
async def test_screens_full_of_emoji_fit_telegrams_limit(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    """Telegram counts 4096 in UTF-16 code units, an emoji beyond the BMP as 2: with every value
    at its longest in such emoji, the card, its history and comments, an approval and a search
    are cut to fit, and the double (counting as Telegram does) refuses none of them."""
    emoji = "📚🎓" * 2500  # 5,000 characters, 10,000 code units
    async with session_factory() as session:
        session.add(
            factories.application(
                778,
                3,
                10,
                program=emoji,
                description=emoji,
                listener_categories=emoji,
                competencies=emoji,
                dpo_organization=emoji,
                group=emoji[:500],
                study_form=emoji[:255],
            )
        )
        await session.execute(update(Account).where(Account.id == 3).values(full_name="😀" * 255))
        school = update(Organization).where(Organization.id == 10)
        await session.execute(school.values(name="🏫" * 500))
        await session.commit()
        for _ in range(6):
            clock.advance(minutes=1)
            done = await perform_action(
                Repositories(session), SECOND, 778, Action.COMMENT, comment="🎉" * 1000, clock=clock
            )
            assert isinstance(done, Done), done
        await session.commit()

    screens = [await harness.send(DIRECTOR, "778")]
    assert screens[0].text.startswith("Заявка №778")
    for label in ["🕓 История", "◀ К заявке", "💬 Комментарии (6)", "◀ К заявке", "✅ Одобрить"]:
        screens.append(await harness.press(DIRECTOR, label))
    screens.append(await harness.send(DIRECTOR, "👍" * 1000))
    assert screens[-1].text.startswith("✅ Заявка №778 одобрена.")
    screens.append(await harness.send(DIRECTOR, "😀" * 50))
    harness.assert_no_errors()  # no send or edit refused as too long
    for screen in screens:
        assert utf16_length(screen.text) <= 4096
    assert "…" in screens[0].text
