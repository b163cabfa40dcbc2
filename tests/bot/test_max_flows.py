"""What MAX alone does, through the real translation and runner and the MAX Bot API double at
its documented limits: a press costs one request, a stopped bot holds the pushes until the user
is back, a person bound in both messengers chooses where pushes go, and an exported list comes
as a file. Every role's flows run in MAX as in Telegram through the chat driver (tests/chats.py)
in the other tests of tests/bot."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import storage.models
from bot.conversation.pushes import RENDERERS, PushContext
from bot.max.sender import MAX_CHANNEL, MaxSender
from bot.screens.screen import Screen
from services.clock import SystemClock
from storage.repositories import Repositories
from tests import factories
from tests.chats import MaxChat, open_card
from tests.director_data import BY_STATUS, NEWEST_NEW, seed_applications, status_of
from tests.max_harness import MaxHarness
from tests.xlsx import read_rows

# Bindings per messenger, their constraints and the decisions' locks are the database's.
pytestmark = pytest.mark.every_backend

DIRECTOR = 1001  # account 1, Петров Пётр Петрович, director of org 10


@pytest.fixture
async def school(seeded: None, session_factory: async_sessionmaker[AsyncSession]) -> None:
    """seed_school's people (bound in Telegram) with the director, an applicant and the staff
    member bound in MAX too; the director's applications."""
    await seed_applications(session_factory)
    async with session_factory() as session:
        for account_id in (1, 3, 7):
            person = account_id + 1000
            session.add(
                factories.binding(
                    account_id,
                    factories.user_id_of(person, "max"),
                    messenger="max",
                    chat_id=factories.chat_id_of(person, "max"),
                )
            )
        await session.commit()


async def binding_of(
    session_factory: async_sessionmaker[AsyncSession], messenger: str, person: int
) -> storage.models.Binding:
    async with session_factory() as session:
        found = await session.scalar(
            select(storage.models.Binding).where(
                storage.models.Binding.messenger == messenger,
                storage.models.Binding.user_id == factories.user_id_of(person, messenger),
            )
        )
    assert found is not None
    return found


@pytest.mark.usefixtures("school")
async def test_a_press_costs_one_request_within_maxs_limits(
    max_harness: MaxHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """With the double at MAX's 2 requests a second per dialog, each press of the approval is
    one POST /answers carrying the new screen (a 429 on the way is waited out and the same
    request made again)."""
    api = max_harness.api
    card = await open_card(MaxChat(max_harness), DIRECTOR, NEWEST_NEW)
    api.set_rate_limits()  # MAX's documented limits, which the chat driver turns off
    for label in ("✅ Одобрить", "Без комментария"):
        calls = len(api.calls)
        await max_harness.press(factories.user_id_of(DIRECTOR, "max"), label, str(card.message_id))
        answered = [c.endpoint for c in api.calls[calls:] if c.status != 429]
        assert answered == ["POST /answers"], label
    done = api.message(str(card.message_id))
    assert done.text.startswith(f"✅ Заявка №{NEWEST_NEW} одобрена.")
    assert await status_of(session_factory, NEWEST_NEW) == "approved"
    max_harness.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_a_stopped_bot_marks_the_binding_blocked_until_the_user_is_back(
    max_harness: MaxHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    user = factories.user_id_of(DIRECTOR, "max")
    max_harness.api.stop_bot(user)
    await max_harness.feed_pending()
    assert (await binding_of(session_factory, "max", DIRECTOR)).blocked
    telegram = await binding_of(session_factory, "telegram", DIRECTOR)
    assert not telegram.blocked  # the other messenger is not touched
    back = await max_harness.start(user)
    assert "Главное меню" in back.text
    assert not (await binding_of(session_factory, "max", DIRECTOR)).blocked
    max_harness.assert_no_errors()


async def push_messengers(
    session_factory: async_sessionmaker[AsyncSession], account: int
) -> set[str]:
    async with session_factory() as session:
        return {r.messenger for r in await Repositories(session).links.recipients([account])}


@pytest.mark.usefixtures("school")
async def test_a_person_bound_in_both_messengers_chooses_where_pushes_go(
    max_harness: MaxHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    user = factories.user_id_of(DIRECTOR, "max")
    menu = await max_harness.send(user, "/menu")
    assert "🔔 Уведомления" in [label for row in menu.buttons() for label in row]
    screen = await max_harness.press(user, "🔔 Уведомления")
    assert "Выберите, куда присылать уведомления" in screen.text
    default = await push_messengers(session_factory, 1)
    assert len(default) == 1  # the messenger bound last
    [marked] = [label for label in screen.buttons()[0] if label.startswith("• ")]
    assert marked == {"telegram": "• В Telegram", "max": "• В MAX"}[default.pop()]
    both = await max_harness.press(user, "В оба")
    assert "Уведомления приходят в Telegram и MAX." in both.text
    assert both.buttons()[0] == ["В Telegram", "В MAX", "• В оба"]
    assert await push_messengers(session_factory, 1) == {"telegram", "max"}
    only_telegram = await max_harness.press(user, "В Telegram")
    assert only_telegram.buttons()[0] == ["• В Telegram", "В MAX", "В оба"]
    assert await push_messengers(session_factory, 1) == {"telegram"}
    async with session_factory() as session:
        account = await session.get(storage.models.Account, 1)
        assert account is not None
        assert account.push_to == "telegram"
    max_harness.assert_no_errors()


@pytest.mark.usefixtures("school")
async def test_the_director_exports_the_list_from_max_and_gets_the_xlsx_file(
    max_harness: MaxHarness,
) -> None:
    """«📤 Выгрузить» in MAX: the file goes through MAX's uploads (POST /uploads, the bytes to
    the upload URL, a message with the `file` attachment) and is the list as filtered."""
    api = max_harness.api
    user = factories.user_id_of(DIRECTOR, "max")
    menu = await max_harness.send(user, "/menu")
    listing = await max_harness.press(user, menu.buttons()[0][0])
    everything = await max_harness.press(user, "Все")  # the director's 15, on 3 pages
    assert ["📤 Выгрузить"] in everything.buttons()
    await max_harness.press(user, "📤 Выгрузить", listing.mid)
    assert api.notifications(user)[-1] == "Список выгружен: 15"
    sent = api.last_bot_message(user)
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


@pytest.mark.usefixtures("school")
async def test_a_dialog_started_again_under_a_new_chat_id_gets_the_pushes(
    max_harness: MaxHarness,
    session_factory: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The user removes the dialog and starts the bot again; MAX gives the new dialog another
    chat id: the binding follows it, and the push held for the dead dialog arrives in the new
    one (not to the dead dialog, blocked and held again each time the user writes)."""

    async def notice(context: PushContext) -> Screen:
        return Screen(f"Уведомление {context.row.id}")

    monkeypatch.setitem(RENDERERS, "max_test_notice", notice)
    api = max_harness.api
    api.new_chat_after_removal = True
    user = factories.user_id_of(DIRECTOR, "max")
    old_chat = api.chat_id_of(user)
    api.remove_dialog(user)
    await max_harness.feed_pending()
    assert (await binding_of(session_factory, "max", DIRECTOR)).blocked
    now = max_harness.clock.now()
    async with session_factory() as session:
        session.add(
            storage.models.OutboxMessage(
                channel=MAX_CHANNEL,
                kind="max_test_notice",
                account_id=1,
                chat_id=old_chat,
                payload={},
                state="held",
                attempts=0,
                available_at=now,
                created_at=now,
            )
        )
        await session.commit()

    await max_harness.start(user)
    new_chat = api.chat_id_of(user)
    assert new_chat != old_chat
    binding = await binding_of(session_factory, "max", DIRECTOR)
    assert (binding.chat_id, binding.blocked) == (new_chat, False)
    # A late dialog_removed of the dead dialog does not block the new one.
    api.queue_update(
        {
            "update_type": "dialog_removed",
            "timestamp": 1,
            "chat_id": old_chat,
            "user": {"user_id": user, "first_name": "Пётр"},
        }
    )
    await max_harness.feed_pending()
    assert not (await binding_of(session_factory, "max", DIRECTOR)).blocked

    worker = MaxSender(max_harness.client, max_harness.settings).worker(
        session_factory, SystemClock()
    )
    assert await worker.drain() == 1
    async with session_factory() as session:
        [row] = list(await session.scalars(select(storage.models.OutboxMessage)))
    assert (row.chat_id, row.state) == (new_chat, "sent")
    assert api.chat(user)[-1].text == f"Уведомление {row.id}"
    max_harness.assert_no_errors()
