"""Staff are told (issue 15): a daily digest of director-approved applications waiting for
«Включить в группу», by organisation, with its opt-out; and a push when an applicant cancels an
application the director had approved. Through the outbox, the notifier and the Bot API double."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.screens.screen import Screen
from services.clock import ManualClock
from services.digest import run_digest_if_due
from services.outbox import OutboxWorker
from storage.models import OutboxMessage
from tests.bot.test_pushes import bot_messages, notifier_for
from tests.harness import BotHarness
from tests.integration.test_digest import NINE, ZONE, add_applications, local

STAFF = 1007

# a digest once a day: the database's constraints
pytestmark = [pytest.mark.usefixtures("seeded"), pytest.mark.every_backend]


@pytest.fixture
def notifier(harness: BotHarness, clock: ManualClock) -> OutboxWorker[Screen]:
    return notifier_for(harness, clock)


async def kinds_for(session_factory: async_sessionmaker[AsyncSession], account: int) -> list[str]:
    async with session_factory() as session:
        rows = await session.scalars(
            select(OutboxMessage.kind)
            .where(OutboxMessage.account_id == account)
            .order_by(OutboxMessage.id)
        )
        return list(rows)


async def test_staff_get_a_daily_digest_of_approved_applications_by_organisation(
    harness: BotHarness, notifier: OutboxWorker[Screen], clock: ManualClock
) -> None:
    await add_applications(
        harness.session_factory,
        (101, 3, 10, "approved"),
        (102, 4, 10, "approved"),
        (103, 6, 20, "approved"),
        (104, 6, 20, "new"),
    )
    clock.set(local(1, 9))
    await run_digest_if_due(harness.session_factory, clock, ZONE, NINE)
    assert await kinds_for(harness.session_factory, 7) == ["staff_digest"]
    await notifier.drain()
    [digest] = bot_messages(harness.api, STAFF)
    assert digest.text.splitlines() == [
        "📋 Ежедневная сводка: ожидают включения в группу",
        "Заявок «Подтверждена руководителем ОО»: 3",
        "",
        "• МАОУ «СОШ № 10» г. Челябинска — 2",
        "• МАОУ «СОШ № 20» г. Челябинска — 1",
        "",
        "Включить их в группу можно в разделе «Заявки».",
    ]
    listing = await harness.press(STAFF, "📥 Открыть заявки", digest.message_id)
    assert "Подтверждена" in listing.text
    harness.assert_no_errors()


async def test_staff_opt_out_of_the_digest_in_notifications(
    harness: BotHarness, clock: ManualClock
) -> None:
    await add_applications(harness.session_factory, (101, 3, 10, "approved"))
    await harness.send(STAFF, "/menu")
    screen = await harness.press(STAFF, "🔔 Уведомления")
    assert "сводка по заявкам, ожидающим включения в группу, включена" in screen.text
    screen = await harness.press(STAFF, "📋 Не присылать сводку")
    assert "выключена" in screen.text
    clock.set(local(1, 9))
    await run_digest_if_due(harness.session_factory, clock, ZONE, NINE)
    assert await kinds_for(harness.session_factory, 7) == []
    harness.assert_no_errors()


async def test_staff_are_told_when_an_applicant_cancels_an_approved_application(
    harness: BotHarness, notifier: OutboxWorker[Screen], clock: ManualClock
) -> None:
    await add_applications(harness.session_factory, (101, 3, 10, "approved"), (102, 3, 10, "new"))
    # A new one withdrawn: staff never waited for it.
    await harness.send(1003, "102")
    await harness.press(1003, "❌ Отменить")
    await harness.press(1003, "Да, отменить")
    await harness.press(1003, "Без комментария")
    assert await kinds_for(harness.session_factory, 7) == []
    # An approved one withdrawn: staff are told.
    await harness.send(1003, "101")
    await harness.press(1003, "❌ Отменить")
    await harness.press(1003, "Да, отменить")
    await harness.send(1003, "Передумала")
    assert await kinds_for(harness.session_factory, 7) == ["status_changed"]
    await notifier.drain()
    [push] = bot_messages(harness.api, STAFF)
    assert push.text.startswith("🔔 Заявка №101: статус изменён")
    assert "«Подтверждена руководителем ОО» → «Отменена»" in push.text
    card = await harness.press(STAFF, "Подробнее", push.message_id)
    assert card.text.startswith("Заявка №101")
    harness.assert_no_errors()
