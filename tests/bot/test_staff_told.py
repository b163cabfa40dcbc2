"""Staff are told (issue 15): a daily digest of director-approved applications waiting for
«Включить в группу», by organisation, with its opt-out; and a push when an applicant cancels an
application the director had approved. Through the outbox, the notifier and each messenger's
double."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.screens.screen import Screen
from services.clock import ManualClock
from services.digest import run_digest_if_due
from services.outbox import OutboxWorker
from storage.models import OutboxMessage
from tests.chats import Chat
from tests.integration.test_digest import NINE, ZONE, add_applications, local

STAFF = 1007

# a digest once a day: the database's constraints
pytestmark = [pytest.mark.usefixtures("seeded"), pytest.mark.every_backend]


@pytest.fixture
def notifier(chat: Chat) -> OutboxWorker[Screen]:
    return chat.notifier()


async def kinds_for(session_factory: async_sessionmaker[AsyncSession], account: int) -> list[str]:
    async with session_factory() as session:
        rows = await session.scalars(
            select(OutboxMessage.kind)
            .where(OutboxMessage.account_id == account)
            .order_by(OutboxMessage.id)
        )
        return list(rows)


async def test_staff_get_a_daily_digest_of_approved_applications_by_organisation(
    chat: Chat, notifier: OutboxWorker[Screen], clock: ManualClock
) -> None:
    await add_applications(
        chat.session_factory,
        (101, 3, 10, "approved"),
        (102, 4, 10, "approved"),
        (103, 6, 20, "approved"),
        (104, 6, 20, "new"),
    )
    clock.set(local(1, 9))
    await run_digest_if_due(chat.session_factory, clock, ZONE, NINE)
    assert await kinds_for(chat.session_factory, 7) == ["staff_digest"]
    await notifier.drain()
    [digest] = chat.bot_messages(STAFF)
    assert digest.text.splitlines() == [
        "📋 Ежедневная сводка: ожидают включения в группу",
        "Заявок «Подтверждена руководителем ОО»: 3",
        "",
        "• МАОУ «СОШ № 10» г. Челябинска — 2",
        "• МАОУ «СОШ № 20» г. Челябинска — 1",
        "",
        "Включить их в группу можно в разделе «Заявки».",
    ]
    listing = await chat.press(STAFF, "📥 Открыть заявки", digest.message_id)
    assert "Подтверждена" in listing.text
    chat.assert_no_errors()


async def test_staff_opt_out_of_the_digest_in_notifications(chat: Chat, clock: ManualClock) -> None:
    await add_applications(chat.session_factory, (101, 3, 10, "approved"))
    await chat.send(STAFF, "/menu")
    screen = await chat.press(STAFF, "🔔 Уведомления")
    assert "сводка по заявкам, ожидающим включения в группу, включена" in screen.text
    screen = await chat.press(STAFF, "📋 Не присылать сводку")
    assert "выключена" in screen.text
    clock.set(local(1, 9))
    await run_digest_if_due(chat.session_factory, clock, ZONE, NINE)
    assert await kinds_for(chat.session_factory, 7) == []
    chat.assert_no_errors()


async def test_staff_are_told_when_an_applicant_cancels_an_approved_application(
    chat: Chat, notifier: OutboxWorker[Screen], clock: ManualClock
) -> None:
    await add_applications(chat.session_factory, (101, 3, 10, "approved"), (102, 3, 10, "new"))
    # A new one withdrawn: staff never waited for it.
    await chat.send(1003, "102")
    await chat.press(1003, "❌ Отменить")
    await chat.press(1003, "Да, отменить")
    await chat.press(1003, "Без комментария")
    assert await kinds_for(chat.session_factory, 7) == []
    # An approved one withdrawn: staff are told.
    await chat.send(1003, "101")
    await chat.press(1003, "❌ Отменить")
    await chat.press(1003, "Да, отменить")
    await chat.send(1003, "Передумала")
    assert await kinds_for(chat.session_factory, 7) == ["status_changed"]
    await notifier.drain()
    [push] = chat.bot_messages(STAFF)
    assert push.text.startswith("🔔 Заявка №101: статус изменён")
    assert "«Подтверждена руководителем ОО» → «Отменена»" in push.text
    card = await chat.press(STAFF, "Подробнее", push.message_id)
    assert card.text.startswith("Заявка №101")
    chat.assert_no_errors()
