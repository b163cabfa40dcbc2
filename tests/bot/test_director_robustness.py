"""The director's screens when the world moves, in each messenger: stale cards, a restart,
pushes, forged buttons, over-long texts; Telegram's «message is not modified»."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.conversation.intents import AppAction, AppIntent, StatusCode
from bot.screens.markup import utf16_length
from bot.screens.screen import Button, Screen
from services.applications import Done, perform_action
from services.clock import ManualClock
from services.domain import Action, Actor, Role
from storage.models import Account, Organization
from storage.repositories import Repositories
from tests import factories
from tests.chats import Chat, Shown, TelegramChat, open_card, open_list
from tests.director_data import (
    DIRECTOR,
    LISTENER,
    NEWEST_NEW,
    OTHER_DIRECTOR,
    OTHER_ORG_NUMBER,
    STALE,
    forged,
    seed_applications,
    status_of,
    unchanged,
)
from tests.fakes.bot_api import parse_html

pytestmark = pytest.mark.every_backend  # over-long values meet the columns, which PostgreSQL checks

SECOND = Actor(2, "Сидорова Анна Ивановна", Role.DIRECTOR, frozenset({Role.DIRECTOR}), 10)


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


async def pushed(chat: Chat, user: int, *buttons: tuple[str, AppIntent]) -> Shown:
    """A message with buttons as the notifications' pushes carry them."""
    rows = tuple((Button(label, intent),) for label, intent in buttons)
    return await chat.show(user, Screen("Новая заявка", rows))


@pytest.mark.usefixtures("school")
async def test_a_stale_card_is_redrawn_and_says_what_changed(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    card = await open_card(chat, DIRECTOR, NEWEST_NEW)
    await decide_elsewhere(session_factory, clock, NEWEST_NEW, Action.APPROVE)

    redrawn = await chat.press_on(card, "❌ Отменить")
    expected = (
        "ℹ️ Статус заявки изменился: было «Не обработана», теперь «Подтверждена руководителем ОО»."
    )
    assert chat.answer() == chat.alert(expected)
    assert redrawn.text.startswith(expected + "\n\nЗаявка №39737")
    assert "Статус: Подтверждена руководителем ОО" in redrawn.text
    assert "Изменил(а) статус: Сидорова Анна Ивановна (Руководитель ОО)" in redrawn.text
    assert redrawn.buttons()[0] == ["💬 Комментарии", "🕓 История"]  # no decisions left
    assert await status_of(session_factory, NEWEST_NEW) == "approved"
    chat.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_a_decision_on_a_prompt_gone_stale_loses_and_shows_the_current_status(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    card = await open_card(chat, DIRECTOR, NEWEST_NEW)
    await chat.press_on(card, "✅ Одобрить")
    await decide_elsewhere(session_factory, clock, NEWEST_NEW, Action.CANCEL)
    async with unchanged(session_factory):
        redrawn = await chat.press_on(card, "Без комментария")
        message = "Заявка №39737 уже обработана: статус «Отменена»"
        assert chat.answer() == chat.alert(message)
        assert redrawn.text.startswith(message + "\n\nЗаявка №39737\nСтатус: Отменена")

    # The same with a typed comment: the input ends, the card says what happened.
    await chat.start(DIRECTOR, "app_39736")
    await chat.press(DIRECTOR, "✅ Одобрить")
    await decide_elsewhere(session_factory, clock, 39736, Action.APPROVE)
    answer = await chat.send(DIRECTOR, "Одобряю")
    assert answer.text.startswith(
        "Заявка №39736 уже обработана: статус «Подтверждена руководителем ОО»"
    )
    assert "Изменил(а) статус: Сидорова Анна Ивановна" in answer.text
    assert "Комментарий: Одобряю" not in answer.text
    chat.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_a_card_from_before_a_restart_works_from_the_database(
    chat: Chat,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> None:
    card = await open_card(chat, DIRECTOR, NEWEST_NEW)
    other = await chat.send(DIRECTOR, "39736")
    await decide_elsewhere(session_factory, clock, 39736, Action.CANCEL)
    await chat.close()

    # A new process: a new front end with empty conversation state over the same database.
    async with chat.another() as restarted:
        redrawn = await restarted.press_on(other, "✅ Одобрить")
        assert redrawn.text.startswith("ℹ️ Статус заявки изменился: было «Не обработана»")
        assert "Статус: Отменена" in redrawn.text

        await restarted.press_on(card, "✅ Одобрить")
        approved = await restarted.press_on(card, "Без комментария")
        assert approved.text.startswith("✅ Заявка №39737 одобрена.")
        assert await status_of(session_factory, NEWEST_NEW) == "approved"
        back = await restarted.press_on(card, "◀ К списку")
        assert "Статус: все" in back.text
        restarted.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_buttons_of_a_push_work_from_any_message(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    push = await pushed(
        chat,
        DIRECTOR,
        ("✅ Одобрить", AppIntent(action=AppAction.APPROVE, number=NEWEST_NEW)),
        ("❌ Отменить", AppIntent(action=AppAction.CANCEL, number=39736)),
        ("Подробнее", AppIntent(action=AppAction.OPEN, number=39735)),
    )
    card = await chat.press_on(push, "Подробнее")
    assert card.text.startswith("Заявка №39735\nСтатус: Не обработана")

    push = await pushed(
        chat, DIRECTOR, ("❌ Отменить", AppIntent(action=AppAction.CANCEL, number=39736))
    )
    confirm = await chat.press_on(push, "❌ Отменить")
    assert confirm.text.startswith("Отменить заявку №39736?")

    push = await pushed(
        chat, DIRECTOR, ("✅ Одобрить", AppIntent(action=AppAction.APPROVE, number=NEWEST_NEW))
    )
    await chat.press_on(push, "✅ Одобрить")
    approved = await chat.press_on(push, "Без комментария")
    assert approved.text.startswith("✅ Заявка №39737 одобрена.")
    assert await status_of(session_factory, NEWEST_NEW) == "approved"

    # A push for an application decided meanwhile: refused with the reason, the card shown.
    late = await pushed(
        chat, DIRECTOR, ("✅ Одобрить", AppIntent(action=AppAction.APPROVE, number=NEWEST_NEW))
    )
    card = await chat.press_on(late, "✅ Одобрить")
    reason = "Заявка №39737 уже обработана: статус «Подтверждена руководителем ОО»"
    assert chat.answer() == chat.alert(reason)
    assert card.text.startswith(reason)
    chat.assert_no_errors()


@pytest.mark.usefixtures("school")
@pytest.mark.parametrize("messenger", ["telegram"], indirect=True)  # Telegram's refusal
async def test_message_is_not_modified_is_success(chat: TelegramChat) -> None:
    harness = chat.harness
    listing = await open_list(chat, DIRECTOR)
    calls = len(harness.api.calls_of("editMessageText"))
    same = await chat.press_on(listing, "• Не обработана")
    again = await chat.press_on(listing, "1/2")
    assert same.text == again.text == listing.text
    edits = harness.api.calls_of("editMessageText")[calls:]
    assert [call.description for call in edits] == [
        "Bad Request: message is not modified: specified new message content and reply markup "
        "are exactly the same as a current content and reply markup of the message"
    ] * 2
    chat.assert_no_errors()


@pytest.mark.usefixtures("school_unchanged")
async def test_forged_and_foreign_presses_are_refused_and_change_nothing(chat: Chat) -> None:
    card = await open_card(chat, DIRECTOR, NEWEST_NEW)

    # Another organisation's application, even with well-formed data.
    for action in AppAction:
        await chat.press_data(DIRECTOR, forged(action, OTHER_ORG_NUMBER), card.message_id)
        assert chat.answer() in [
            chat.alert("Заявка №40001 не найдена или недоступна вам."),
            chat.alert(STALE),
        ]
    # The other organisation's director on this organisation's application.
    menu = await chat.send(OTHER_DIRECTOR, "/menu")
    await chat.press_data(
        OTHER_DIRECTOR,
        forged(AppAction.APPROVE_NO_COMMENT, NEWEST_NEW, StatusCode.NEW),
        menu.message_id,
    )
    assert chat.answer() == chat.alert("Заявка №39737 не найдена или недоступна вам.")
    # A listener (the applicant herself) pressing a director's button; an unlinked stranger.
    menu = await chat.send(LISTENER, "/menu")
    await chat.press_data(
        LISTENER, forged(AppAction.APPROVE_NO_COMMENT, NEWEST_NEW), menu.message_id
    )
    assert chat.answer() == chat.alert(
        "Действие «Одобрить» — для роли «Руководитель ОО»; у вас такой роли нет"
    )
    # A staff action: said plainly.
    await chat.press_data(
        DIRECTOR, forged(AppAction.INCLUDE, 39738, StatusCode.APPROVED), card.message_id
    )
    assert chat.answer() == chat.alert(
        "Действие «Включить в группу» — для роли «Сотрудник ЦОПМ / ГБУ ДПО «ЧИРО»»; у вас "
        "такой роли нет"
    )
    # Malformed data, an unknown prefix, an id beyond the database's range.
    for data in [
        "a:ap:abc:0::n:0:0",
        "a2:zz:39737",
        "zz:1",
        f"a:an:{2**63}:0:n:n:0:0:0",
        "a:an:-39737:0:n:n:0:0:0",
        "al:s:n:-1:0:0",
    ]:
        await chat.press_data(DIRECTOR, data, card.message_id)
        assert chat.answer() == chat.alert(STALE)
    # A forged decision on an application already processed.
    await chat.press_data(
        DIRECTOR,
        forged(AppAction.CANCEL_NO_COMMENT, 39744, StatusCode.INCLUDED),
        card.message_id,
    )
    assert chat.answer() == chat.alert("Заявка №39744 уже обработана: статус «Включен в группу»")
    chat.assert_no_errors()


def every_text_at_its_longest(value: str) -> dict[str, str]:
    """An application's text fields, each `value` cut to its column's length, if it has one."""
    return {
        "program": value,
        "description": value,
        "listener_categories": value,
        "competencies": value,
        "dpo_organization": value,
        "group": value[:500],
        "study_form": value[:255],
    }


@pytest.mark.usefixtures("seeded")
async def test_over_long_fields_are_cut_without_breaking_html(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    long = "<Программа & «развитие»> " * 400  # 10,000 characters, every one HTML-special
    async with session_factory() as session:
        session.add(factories.application(777, 3, 10, **every_text_at_its_longest(long)))
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

    card = await chat.send(DIRECTOR, "777")
    assert card.text.startswith("Заявка №777")
    assert len(card.text) <= chat.text_limit
    assert "…" in card.text
    assert "Программа: <Программа & «развитие»>" in card.text  # escaped, shown as typed
    if chat.messenger == "telegram":
        parse_html(card.markup or "")  # whole HTML, as Telegram checks it

    for label in ["🕓 История", "◀ К заявке", "💬 Комментарии (6)"]:
        screen = await chat.press(DIRECTOR, label)
        assert len(screen.text) <= chat.text_limit
    assert "…" in screen.text

    await chat.press(DIRECTOR, "◀ К заявке")
    await chat.press(DIRECTOR, "✅ Одобрить")
    approved = await chat.send(DIRECTOR, "Ок " + "<&>" * 300)
    assert approved.text.startswith("✅ Заявка №777 одобрена.")
    assert len(approved.text) <= chat.text_limit

    listing = await chat.send(DIRECTOR, "Я" * 150)
    assert "Найдено: 1" in listing.text
    assert all(len(label) <= 64 for row in listing.buttons() for label in row)
    chat.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_a_button_of_the_persons_other_role_acts_in_that_role_and_says_so(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """A director whose active role is «Слушатель» presses «Без комментария» on a prompt (or
    a push) sent for his role «Руководитель ОО»: the decision is made in that role, he is
    told so, and the role stays switched (the chat's commands follow)."""
    async with session_factory() as session:
        await session.execute(update(Account).where(Account.id == 1).values(active_role="listener"))
        await session.commit()
    menu = await chat.send(DIRECTOR, "/menu")
    await chat.press_data(DIRECTOR, "m:a", menu.message_id)
    own = chat.message(DIRECTOR, menu.message_id)
    assert own.text.startswith("📄 Мои заявки\nСтатус: все\n\nЗаявок с таким статусом нет.")
    decision = AppIntent(
        action=AppAction.APPROVE_NO_COMMENT, number=NEWEST_NEW, status=StatusCode.NEW
    )
    await chat.press_data(DIRECTOR, decision.pack(), menu.message_id)
    assert chat.answer() == chat.toast(
        "Роль переключена: «Руководитель ОО» — кнопка относится к ней"
    )
    card = chat.message(DIRECTOR, menu.message_id)
    assert card.text.startswith(f"✅ Заявка №{NEWEST_NEW} одобрена.")
    assert await status_of(session_factory, NEWEST_NEW) == "approved"
    link = await chat.binding(DIRECTOR)
    assert link is not None
    assert link.account.active_role == "director"
    if isinstance(chat, TelegramChat):  # MAX has no per-chat command menu
        assert (chat.commands(DIRECTOR) or [])[:1] == ["menu"]
    chat.assert_no_errors()


@pytest.mark.usefixtures("seeded")
async def test_screens_full_of_emoji_fit_the_messengers_limit(
    chat: Chat, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    """Telegram counts 4096 in UTF-16 code units, an emoji beyond the BMP as 2 (the MAX double
    counts MAX's 4,000 the same way): with every value at its longest in such emoji, the card,
    its history and comments, an approval and a search are cut to fit, and the double refuses
    none of them."""
    emoji = "📚🎓" * 2500  # 5,000 characters, 10,000 code units
    async with session_factory() as session:
        session.add(factories.application(778, 3, 10, **every_text_at_its_longest(emoji)))
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

    screens = [await chat.send(DIRECTOR, "778")]
    assert screens[0].text.startswith("Заявка №778")
    for label in ["🕓 История", "◀ К заявке", "💬 Комментарии (6)", "◀ К заявке", "✅ Одобрить"]:
        screens.append(await chat.press(DIRECTOR, label))
    screens.append(await chat.send(DIRECTOR, "👍" * 1000))
    assert screens[-1].text.startswith("✅ Заявка №778 одобрена.")
    screens.append(await chat.send(DIRECTOR, "😀" * 50))
    chat.assert_no_errors()  # no send or edit refused as too long
    for screen in screens:
        assert utf16_length(screen.text) <= chat.text_limit
    assert "…" in screens[0].text
