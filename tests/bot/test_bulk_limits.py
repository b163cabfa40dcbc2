"""What «✅ Одобрить все» offers when the director's «Не обработана» list holds more than one
approval takes (LIMIT, 500): the button and the confirmation say «первые 500», never a count
the approval would not reach; and staff read when their digest comes, in words. Through the
real Dispatcher and the Bot API double."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.screens.bulk import LIMIT
from tests import factories
from tests.director_data import DIRECTOR
from tests.harness import BotHarness

pytestmark = pytest.mark.usefixtures("seeded")

STAFF = 1007  # Иванова Ольга Николаевна (account 7)


async def add_new(session_factory: async_sessionmaker[AsyncSession], count: int) -> None:
    """`count` applications «Не обработана» of org 10's applicants (accounts 3 and 4)."""
    async with session_factory() as session:
        session.add_all(
            factories.application(50_000 + i, 3 + i % 2, 10, "new") for i in range(count)
        )
        await session.commit()


async def new_list_buttons(harness: BotHarness) -> list[str]:
    menu = await harness.send(DIRECTOR, "/menu")
    listing = await harness.press(DIRECTOR, menu.buttons()[0][0])
    return [label for row in listing.buttons() for label in row]


async def test_a_list_of_the_limit_offers_all(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await add_new(session_factory, LIMIT)
    assert "✅ Одобрить все (500)" in await new_list_buttons(harness)
    confirm = await harness.press(DIRECTOR, "✅ Одобрить все (500)")
    assert confirm.text.startswith("Одобрить заявки?\nЗаявок к одобрению: 500\n\n№")
    assert "первые" not in confirm.text
    harness.assert_no_errors()


async def test_a_list_over_the_limit_offers_the_first_500_and_says_so(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    await add_new(session_factory, LIMIT + 7)
    labels = await new_list_buttons(harness)
    assert "✅ Одобрить первые 500" in labels
    assert not [label for label in labels if label.startswith("✅ Одобрить все")]
    confirm = await harness.press(DIRECTOR, "✅ Одобрить первые 500")
    assert confirm.text.startswith(
        "Одобрить заявки?\nЗаявок к одобрению: 500\n\n"
        "За один раз одобряются не больше 500 заявок: это первые 500 из 507 по порядку списка. "
        "Остальные останутся в статусе «Не обработана».\n\n№"
    )
    harness.assert_no_errors()


async def test_staff_read_when_the_digest_comes_in_words(harness: BotHarness) -> None:
    await harness.send(STAFF, "/menu")
    screen = await harness.press(STAFF, "🔔 Уведомления")
    assert (
        "Ежедневная сводка по заявкам, ожидающим включения в группу, включена: приходит в 09:00 "
        "по времени Екатеринбурга, UTC+5, если такие заявки есть."
    ) in screen.text.splitlines()
    assert "часовой пояс" not in screen.text
    harness.assert_no_errors()
