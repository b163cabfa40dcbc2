"""What «✅ Одобрить все» offers when the director's «Не обработана» list holds more than one
approval takes (LIMIT, 500): the button and the confirmation say «первые 500», never a count
the approval would not reach; and staff read when their digest comes, in words. Through the
real Dispatcher and the Bot API double."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.conversation import bulk
from bot.conversation.intents import BulkAction, BulkIntent
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


async def test_an_application_picked_beyond_the_first_500_is_approved_too(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    """The picker pages through the whole list: what is picked on its last page is in the
    confirmation, not dropped for lying beyond the first LIMIT rows."""
    await add_new(session_factory, LIMIT + 7)
    await new_list_buttons(harness)
    picker = await harness.press(DIRECTOR, "☑️ Выбрать несколько")
    pages = int(picker.text.split("Страница 1 из ")[1].split()[0])
    last = BulkIntent(BulkAction.PAGE, page=pages - 1).pack()
    await harness.press_data(DIRECTOR, last, picker.message_id)
    oldest = 50_000  # the same moment as the others: the lowest number comes last
    page = harness.api.last_bot_message(DIRECTOR)
    toggle = next(label for row in page.buttons() for label in row if f"№{oldest}" in label)
    page = await harness.press(DIRECTOR, toggle)
    assert "Выбрано: 1" in page.text
    confirm = await harness.press(DIRECTOR, "✅ Одобрить выбранные (1)")
    assert confirm.text.startswith("Одобрить заявки?\nЗаявок к одобрению: 1\n\n")
    assert f"№{oldest}" in confirm.text
    result = await harness.press(DIRECTOR, "✅ Одобрить без комментария")
    assert result.text.startswith("Одобрено 1\n\n")
    harness.assert_no_errors()


async def test_no_more_are_picked_than_one_approval_takes(
    harness: BotHarness,
    session_factory: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(bulk, "LIMIT", 2)
    await add_new(session_factory, 5)
    await new_list_buttons(harness)
    picker = await harness.press(DIRECTOR, "☑️ Выбрать несколько")
    unpicked = [label for row in picker.buttons() for label in row if label.startswith("▫️ ")]
    for label in unpicked[:2]:
        picker = await harness.press(DIRECTOR, label)
    assert "Выбрано: 2" in picker.text
    await harness.press(DIRECTOR, unpicked[2])
    assert harness.last_answer() == {
        "text": "Выбрано уже 2: за один раз одобряются не больше 2 заявок. Одобрите выбранные, "
        "затем выберите остальные.",
        "show_alert": True,
    }
    assert "Выбрано: 2" in harness.api.last_bot_message(DIRECTOR).text
    picker = await harness.press(DIRECTOR, "☑️ " + unpicked[0].removeprefix("▫️ "))
    assert "Выбрано: 1" in picker.text  # unpicking stays possible
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
