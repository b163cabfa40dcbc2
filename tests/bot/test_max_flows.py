"""Every role's flows in MAX, through the real translation and runner and the MAX Bot API
double: the portal-first link (`https://max.ru/<bot>?start=<token>`, the token arriving in
`bot_started`), the consent, the menu, the list, the card, approve with a comment, cancel with
a confirmation and a reason, staff's include, the history saying the decision came from MAX, a
press costing one request, and a stopped bot holding the pushes until the user is back."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import storage.models
from services.clock import ManualClock
from services.linking import mint_portal_token
from storage.models import OutboxMessage
from storage.repositories import Repositories
from tests import factories
from tests.director_data import (
    BY_STATUS,
    NEWEST_NEW,
    events_of,
    outbox_of,
    seed_applications,
    status_of,
)
from tests.fakes.max_api import FakeMaxAPI, Message
from tests.max_harness import MaxHarness, max_settings
from tests.xlsx import read_rows

# Bindings per messenger, their constraints and the decisions' locks are the database's.
pytestmark = pytest.mark.every_backend

DIRECTOR = 7_000_001  # account 1, Петров Пётр Петрович, director of org 10
LISTENER = 7_000_003  # account 3, Войсковая Юлия Олеговна
STAFF = 7_000_007  # account 7, Иванова Ольга Николаевна
NEWCOMER = 7_000_050  # account 50, a director not yet bound anywhere
ROW = re.compile(r"№(\d+) · ")


@pytest.fixture
async def max_api() -> AsyncIterator[FakeMaxAPI]:
    async with FakeMaxAPI() as api:
        api.add_user(DIRECTOR, "Пётр", "Петров")
        api.add_user(LISTENER, "Юлия", "Войсковая")
        api.add_user(STAFF, "Ольга", "Иванова")
        api.add_user(NEWCOMER, "Новый", "Директор")
        yield api


@pytest.fixture
async def school(
    seeded: None, max_api: FakeMaxAPI, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """seed_school's people (bound in Telegram) with the director, an applicant and the staff
    member bound in MAX too; the director's applications."""
    await seed_applications(session_factory)
    async with session_factory() as session:
        for account_id, user in ((1, DIRECTOR), (3, LISTENER), (7, STAFF)):
            chat_id = max_api.chat_id_of(user)
            session.add(factories.binding(account_id, user, messenger="max", chat_id=chat_id))
        session.add(factories.account(50, "Новикова Нина Николаевна", 10, "director"))
        await session.commit()


@pytest.fixture
async def max_harness(
    max_api: FakeMaxAPI,
    database_url: str,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> AsyncIterator[MaxHarness]:
    harness = MaxHarness(max_api, max_settings(max_api, database_url), session_factory, clock)
    yield harness
    await harness.close()


def numbers_on(message: Message) -> list[int]:
    return [
        int(m.group(1)) for row in message.buttons() for label in row if (m := ROW.search(label))
    ]


def row_label(message: Message, number: int) -> str:
    return next(label for row in message.buttons() for label in row if f"№{number} · " in label)


async def open_card(harness: MaxHarness, user: int, number: int) -> Message:
    menu = await harness.send(user, "/menu")
    listing = await harness.press(user, menu.buttons()[0][0])
    if "Все" in [label for row in listing.buttons() for label in row]:  # "• Все": shown already
        listing = await harness.press(user, "Все")
    while number not in numbers_on(listing):
        listing = await harness.press(user, "▶")
    return await harness.press(user, row_label(listing, number))


async def binding_of(
    session_factory: async_sessionmaker[AsyncSession], user: int
) -> storage.models.Binding | None:
    async with session_factory() as session:
        return await session.scalar(
            select(storage.models.Binding).where(
                storage.models.Binding.messenger == "max", storage.models.Binding.user_id == user
            )
        )


@pytest.mark.usefixtures("school")
async def test_a_portal_link_binds_the_max_user_then_the_consent_then_the_menu(
    max_harness: MaxHarness, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    api = max_harness.api
    async with session_factory() as session:
        minted = await mint_portal_token(
            Repositories(session), 50, ttl=timedelta(minutes=10), clock=clock
        )
        await session.commit()
    api.start_bot(NEWCOMER, payload=minted.token)  # https://max.ru/<bot>?start=<token>
    await max_harness.feed_pending()
    signed_in, consent = [m for m in api.chat(NEWCOMER) if m.from_bot]
    assert "Новикова Нина Николаевна" in signed_in.text
    assert consent.text.startswith("Согласие на обработку персональных данных")
    assert consent.buttons() == [["Ознакомился"]]
    binding = await binding_of(session_factory, NEWCOMER)
    assert binding is not None
    assert (binding.account_id, binding.chat_id) == (50, api.chat_id_of(NEWCOMER))
    assert binding.chat_id != NEWCOMER  # MAX's dialog is not the user

    menu = await max_harness.press(NEWCOMER, "Ознакомился")
    assert menu.mid == consent.mid  # in place, through the press's answer
    assert "Вы вошли как Новикова Нина Николаевна, роль «Руководитель ОО»" in menu.text
    assert menu.buttons()[0][0].startswith("📥 Заявки")
    max_harness.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_the_director_approves_from_max_with_a_comment_and_the_history_says_max(
    max_harness: MaxHarness, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    api = max_harness.api
    card = await open_card(max_harness, DIRECTOR, NEWEST_NEW)
    assert card.buttons()[0] == ["✅ Одобрить", "❌ Отменить"]
    assert "Статус: Не обработана" in card.text
    calls = len(api.calls)
    prompt = await max_harness.press(DIRECTOR, "✅ Одобрить")
    # One request a press (the double's 2 answers a second per dialog may refuse it first: the
    # answer waits and goes again, the same request).
    answered = [c.endpoint for c in api.calls[calls:] if c.status != 429]
    assert answered == ["POST /answers"]
    assert prompt.mid == card.mid
    assert prompt.buttons() == [["Без комментария", "Отмена"]]
    clock.advance(minutes=5)
    approved = await max_harness.send(DIRECTOR, "Одобряю, ждём на диагностике")
    assert api.message(prompt.mid).deleted  # the prompt's input is over
    assert approved.text.startswith("✅ Заявка №39737 одобрена.")
    assert "Комментарий: Одобряю, ждём на диагностике" in approved.text
    assert approved.buttons() == [["💬 Комментарии (1)", "🕓 История"], ["◀ К списку"]]
    assert await status_of(session_factory, NEWEST_NEW) == "approved"
    [event] = await events_of(session_factory, NEWEST_NEW)
    assert (event.action, event.actor_account_id, event.source) == ("approve", 1, "max")
    [push] = await outbox_of(session_factory, NEWEST_NEW)
    assert (push.account_id, push.kind, push.event_id) == (3, "status_changed", event.id)
    history = await max_harness.press(DIRECTOR, "🕓 История")
    assert "Источник: MAX" in history.text
    max_harness.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_the_director_cancels_from_max_after_a_confirmation_with_a_reason(
    max_harness: MaxHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await open_card(max_harness, DIRECTOR, 39736)
    confirm = await max_harness.press(DIRECTOR, "❌ Отменить")
    assert confirm.text.startswith("Отменить заявку №39736? Заявитель получит уведомление.")
    assert confirm.buttons() == [["Да, отменить", "Нет"]]
    reason = await max_harness.press(DIRECTOR, "Да, отменить")
    assert "Напишите причину отмены для заявителя" in reason.text
    cancelled = await max_harness.send(DIRECTOR, "Заявка подана повторно")
    assert "❌ Заявка №39736 отменена." in cancelled.text
    [event] = await events_of(session_factory, 39736)
    assert (event.action, event.comment, event.source) == (
        "cancel",
        "Заявка подана повторно",
        "max",
    )
    max_harness.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_staff_include_from_max_without_a_comment(
    max_harness: MaxHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    menu = await max_harness.send(STAFF, "/menu")
    listing = await max_harness.press(STAFF, menu.buttons()[0][0])
    while 39738 not in numbers_on(listing):
        listing = await max_harness.press(STAFF, "▶")
    card = await max_harness.press(STAFF, row_label(listing, 39738))
    assert card.buttons()[0] == ["👥 Включить в группу", "❌ Отменить"]
    await max_harness.press(STAFF, "👥 Включить в группу")
    included = await max_harness.press(STAFF, "Без комментария")
    assert included.text.startswith("👥 Заявка №39738 включена в группу.")
    assert await status_of(session_factory, 39738) == "included"
    [event] = await events_of(session_factory, 39738)
    assert (event.action, event.actor_account_id, event.source) == ("include", 7, "max")
    max_harness.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_the_applicant_cancels_own_application_from_max(
    max_harness: MaxHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    card = await open_card(max_harness, LISTENER, NEWEST_NEW)
    assert "❌ Отменить" in [label for row in card.buttons() for label in row]
    await max_harness.press(LISTENER, "❌ Отменить")
    await max_harness.press(LISTENER, "Да, отменить")
    done = await max_harness.press(LISTENER, "Без комментария")
    assert "отменена" in done.text
    assert await status_of(session_factory, NEWEST_NEW) == "cancelled"
    max_harness.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_a_stopped_bot_marks_the_binding_blocked_until_the_user_is_back(
    max_harness: MaxHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    max_harness.api.stop_bot(DIRECTOR)
    await max_harness.feed_pending()
    binding = await binding_of(session_factory, DIRECTOR)
    assert binding is not None
    assert binding.blocked
    telegram = await binding_of_telegram(session_factory, 1001)
    assert not telegram.blocked  # the other messenger is not touched
    back = await max_harness.start(DIRECTOR)
    assert "Главное меню" in back.text
    binding = await binding_of(session_factory, DIRECTOR)
    assert binding is not None
    assert not binding.blocked
    max_harness.assert_no_errors()


async def binding_of_telegram(
    session_factory: async_sessionmaker[AsyncSession], user: int
) -> storage.models.Binding:
    async with session_factory() as session:
        found = await session.scalar(
            select(storage.models.Binding).where(
                storage.models.Binding.messenger == "telegram",
                storage.models.Binding.user_id == user,
            )
        )
    assert found is not None
    return found


@pytest.mark.usefixtures("school")
async def test_a_deep_link_to_a_card_opens_it_in_max(max_harness: MaxHarness) -> None:
    card = await max_harness.start(DIRECTOR, payload=f"app_{NEWEST_NEW}")
    assert f"№{NEWEST_NEW}" in card.text
    assert card.buttons()[0] == ["✅ Одобрить", "❌ Отменить"]
    max_harness.assert_no_errors()


async def pushes(session_factory: async_sessionmaker[AsyncSession]) -> list[OutboxMessage]:
    async with session_factory() as session:
        return list(await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


async def push_messengers(
    session_factory: async_sessionmaker[AsyncSession], account: int
) -> set[str]:
    async with session_factory() as session:
        return {r.messenger for r in await Repositories(session).links.recipients([account])}


@pytest.mark.usefixtures("school")
async def test_a_person_bound_in_both_messengers_chooses_where_pushes_go(
    max_harness: MaxHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    menu = await max_harness.send(DIRECTOR, "/menu")
    assert "🔔 Уведомления" in [label for row in menu.buttons() for label in row]
    screen = await max_harness.press(DIRECTOR, "🔔 Уведомления")
    assert "Выберите, куда присылать уведомления" in screen.text
    default = await push_messengers(session_factory, 1)
    assert len(default) == 1  # the messenger bound last
    [marked] = [label for label in screen.buttons()[0] if label.startswith("• ")]
    assert marked == {"telegram": "• В Telegram", "max": "• В MAX"}[default.pop()]
    both = await max_harness.press(DIRECTOR, "В оба")
    assert "Уведомления приходят в Telegram и MAX." in both.text
    assert both.buttons()[0] == ["В Telegram", "В MAX", "• В оба"]
    assert await push_messengers(session_factory, 1) == {"telegram", "max"}
    only_telegram = await max_harness.press(DIRECTOR, "В Telegram")
    assert only_telegram.buttons()[0] == ["• В Telegram", "В MAX", "В оба"]
    assert await push_messengers(session_factory, 1) == {"telegram"}
    async with session_factory() as session:
        account = await session.get(storage.models.Account, 1)
        assert account is not None
        assert account.push_to == "telegram"
    max_harness.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_a_person_bound_in_one_messenger_is_not_asked_where_pushes_go(
    max_harness: MaxHarness, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    async with session_factory() as session:
        minted = await mint_portal_token(
            Repositories(session), 50, ttl=timedelta(minutes=10), clock=clock
        )
        await session.commit()
    max_harness.api.start_bot(NEWCOMER, payload=minted.token)
    await max_harness.feed_pending()
    await max_harness.press(NEWCOMER, "Ознакомился")
    screen = await max_harness.press(NEWCOMER, "🔔 Уведомления")
    assert "Уведомления включены" in screen.text
    assert "куда присылать" not in screen.text
    labels = [label for row in screen.buttons() for label in row]
    assert not {"В Telegram", "В MAX", "В оба"} & {label.removeprefix("• ") for label in labels}
    assert await push_messengers(session_factory, 50) == {"max"}
    max_harness.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_the_director_exports_the_list_from_max_and_gets_the_xlsx_file(
    max_harness: MaxHarness,
) -> None:
    """«📤 Выгрузить» in MAX: the file goes through MAX's uploads (POST /uploads, the bytes to
    the upload URL, a message with the `file` attachment) and is the list as filtered."""
    api = max_harness.api
    menu = await max_harness.send(DIRECTOR, "/menu")
    listing = await max_harness.press(DIRECTOR, menu.buttons()[0][0])
    everything = await max_harness.press(DIRECTOR, "Все")  # the director's 15, on 3 pages
    assert ["📤 Выгрузить"] in everything.buttons()
    await max_harness.press(DIRECTOR, "📤 Выгрузить", listing.mid)
    assert api.notifications(DIRECTOR)[-1] == "Список выгружен: 15"
    sent = api.last_bot_message(DIRECTOR)
    assert sent.text.startswith("Заявки: 15. 📥 Заявки. Статус: все")
    assert [a["type"] for a in sent.attachments] == ["file"]
    uploaded = api.file(sent.mid)
    assert uploaded.filename.endswith(".xlsx")
    rows = read_rows(uploaded.content)
    assert rows[0][:4] == ["Номер", "Статус", "Заявитель", "ОО"]
    assert sorted(int(row[0]) for row in rows[1:]) == sorted(
        n for numbers in BY_STATUS.values() for n in numbers
    )
    assert {row[3] for row in rows[1:]} == {"МАОУ «СОШ № 10» г. Челябинска"}
    assert [call.query["type"] for call in api.calls_of("POST /uploads")] == ["file"]
    assert api.message(listing.mid).text == everything.text  # the list stays
    max_harness.assert_no_errors()
