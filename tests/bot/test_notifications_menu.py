"""«🔔 Уведомления» in each messenger: mute and unmute, opt out of the digest, edited in place;
a person bound in one messenger is not asked where pushes go."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.conversation.intents import NotifyAction, NotifyIntent
from services.clock import ManualClock
from services.digest import run_digest_if_due
from storage.models import Account, OutboxMessage
from tests.bot.test_pushes import add_application
from tests.chats import Chat
from tests.integration.test_digest import NINE, ZONE, add_applications, local

pytestmark = pytest.mark.usefixtures("seeded")


async def account_of(chat: Chat, person: int) -> Account:
    """The person's account: what they chose for their pushes."""
    link = await chat.binding(person)
    assert link is not None
    return link.account


async def recipients(session_factory: async_sessionmaker[AsyncSession], kind: str) -> list[int]:
    async with session_factory() as session:
        query = select(OutboxMessage.account_id).where(OutboxMessage.kind == kind)
        return sorted(a for a in await session.scalars(query) if a is not None)


async def test_a_director_mutes_and_unmutes_pushes_in_place(chat: Chat, clock: ManualClock) -> None:
    menu = await chat.start(1001)
    screen = await chat.press(1001, "🔔 Уведомления")
    assert screen.message_id == menu.message_id  # one message, edited in place
    assert screen.text.splitlines() == [
        "🔔 Уведомления",
        "",
        "Уведомления включены: бот сообщает о новых заявках, изменении статуса заявок и новых "
        "комментариях.",
        "",
        "Ежедневная сводка по заявкам «Не обработана» включена: приходит в 09:00 "
        "по времени Екатеринбурга, UTC+5, если есть необработанные заявки.",
    ]
    assert screen.buttons() == [
        ["🔕 Выключить уведомления"],
        ["📋 Не присылать сводку"],
        ["◀ В главное меню"],
    ]

    screen = await chat.press(1001, "🔕 Выключить уведомления")
    assert screen.message_id == menu.message_id
    assert chat.answer() == chat.toast("Уведомления выключены")
    assert "Уведомления выключены: бот ничего не присылает сам." in screen.text
    assert "Пока уведомления выключены, сводка тоже не приходит." in screen.text
    assert screen.buttons()[0] == ["🔔 Включить уведомления"]
    assert (await account_of(chat, 1001)).muted

    await add_application(chat.session_factory, clock, number=1)
    assert await recipients(chat.session_factory, "new_application") == [2]

    await chat.press(1001, "🔔 Включить уведомления")
    screen = chat.message(1001, menu.message_id)
    assert chat.answer() == chat.toast("Уведомления включены")
    assert screen.buttons()[0] == ["🔕 Выключить уведомления"]
    assert not (await account_of(chat, 1001)).muted
    await add_application(chat.session_factory, clock, number=2)
    assert await recipients(chat.session_factory, "new_application") == [1, 2, 2]

    await chat.press(1001, "◀ В главное меню", menu.message_id)
    screen = chat.message(1001, menu.message_id)
    assert screen.text.startswith("Главное меню")
    chat.assert_no_errors()


async def test_a_director_opts_out_of_the_digest(chat: Chat, clock: ManualClock) -> None:
    await chat.start(1002)
    await chat.press(1002, "🔔 Уведомления")
    screen = await chat.press(1002, "📋 Не присылать сводку")
    assert chat.answer() == chat.toast("Сводка выключена")
    assert "Ежедневная сводка по заявкам «Не обработана» выключена." in screen.text
    assert screen.buttons()[1] == ["📋 Присылать сводку"]
    assert not (await account_of(chat, 1002)).digest_enabled

    await add_applications(chat.session_factory, (101, 3, 10, "new"))
    clock.set(local(1, 9))
    await run_digest_if_due(chat.session_factory, clock, ZONE, NINE)
    assert await recipients(chat.session_factory, "digest") == [1]

    screen = await chat.press(1002, "📋 Присылать сводку")
    assert chat.answer() == chat.toast("Сводка включена")
    assert (await account_of(chat, 1002)).digest_enabled
    chat.assert_no_errors()


async def test_an_applicant_has_no_digest_setting(chat: Chat) -> None:
    await chat.start(1003)
    screen = await chat.press(1003, "🔔 Уведомления")
    assert "сводка" not in screen.text.lower()
    assert screen.buttons() == [["🔕 Выключить уведомления"], ["◀ В главное меню"]]
    forged = NotifyIntent(action=NotifyAction.DIGEST_OFF).pack()
    await chat.press_data(1003, forged, screen.message_id)
    assert chat.answer() == chat.alert(
        "Ежедневная сводка приходит только руководителям ОО и сотрудникам ЦОПМ / ГБУ ДПО «ЧИРО»."
    )
    assert (await account_of(chat, 1003)).digest_enabled
    chat.assert_no_errors()


async def test_a_repeated_press_on_a_stale_button_is_harmless(chat: Chat) -> None:
    await chat.start(1004)
    screen = await chat.press(1004, "🔔 Уведомления")
    mute = NotifyIntent(action=NotifyAction.MUTE).pack()
    await chat.press_data(1004, mute, screen.message_id)
    await chat.press_data(1004, mute, screen.message_id)  # «message is not modified»
    assert (await account_of(chat, 1004)).muted
    assert chat.answer() == chat.toast("Уведомления выключены")
    chat.assert_no_errors()
