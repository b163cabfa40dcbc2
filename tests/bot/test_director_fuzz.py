"""2,000 random and forged button presses through the real Dispatcher: nothing changes, every
press is answered, nothing fails.

The presses come from a seeded generator (reproducible): random strings, known prefixes with
junk fields, well-formed data for other organisations' and missing applications, mutations of
real buttons, and every kind of data pressed by users who may not use it (the other
organisation's director, a listener on applications not her own, an unlinked stranger).
"""

from __future__ import annotations

import asyncio
import random
import string
from dataclasses import dataclass

import pytest
from aiogram.types import Update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.conversation.intents import (
    AppAction,
    AppIntent,
    ListAction,
    ListFilter,
    StatusCode,
    decode,
)
from tests.director_data import (
    APPLICANT,
    DIRECTOR,
    LISTENER,
    NUMBERS,
    OTHER_DIRECTOR,
    OTHER_ORG_NUMBER,
    UNLINKED,
    seed_applications,
    unchanged,
)
from tests.fakes.bot_api import MAX_CALLBACK_DATA_BYTES
from tests.harness import BotHarness

PRESSES = 2000
SEED = 20260901
ALPHABET = string.ascii_letters + string.digits + ":::--_ .,№ЗаявкаёЁ🙂\u200b"
DECISIONS = {AppAction.APPROVE_NO_COMMENT, AppAction.CANCEL_NO_COMMENT}


@dataclass(frozen=True)
class Press:
    user: int
    data: str
    refused: bool  # must be answered with an alert


@pytest.fixture
async def school(seeded: None, session_factory: async_sessionmaker[AsyncSession]) -> None:
    await seed_applications(session_factory)


def fits(data: str) -> bool:
    return 1 <= len(data.encode()) <= MAX_CALLBACK_DATA_BYTES


def noise(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 40)))


def junk_field(rng: random.Random) -> str:
    return rng.choice(
        [
            "",
            "-1",
            "0",
            str(2**63),
            str(rng.randint(-(10**20), 10**20)),
            "x",
            "None",
            "1.5",
            "1e3",
            "true",
            noise(rng)[:8].replace(":", ""),
        ]
    )


def foreign_number(rng: random.Random) -> int:
    """An application this director may not see: another organisation's, or none at all."""
    return rng.choice([OTHER_ORG_NUMBER, rng.randint(1, 39729), rng.randint(40002, 2**63 - 1)])


def well_formed(rng: random.Random, number: int) -> str:
    return AppIntent(
        action=rng.choice(list(AppAction)),
        number=number,
        page=rng.randint(0, 100),
        status=rng.choice([None, *StatusCode]),
        status_filter=rng.choice(list(ListFilter)),
        list_page=rng.randint(0, 100),
        search=rng.random() < 0.5,
    ).pack()


def malformed(rng: random.Random) -> str:
    prefix = rng.choice(["a", "al", "m", "x", ""])
    fields = [junk_field(rng) for _ in range(rng.randint(0, 9))]
    if prefix == "a" and fields and rng.random() < 0.5:
        fields[0] = rng.choice(list(AppAction)).value
    if prefix == "al" and rng.random() < 0.5:
        fields = [rng.choice(list(ListAction)).value, "n", junk_field(rng), "0"]
    return ":".join([prefix, *fields])


def mutated(rng: random.Random, real: list[str]) -> str:
    data = list(rng.choice(real))
    for _ in range(rng.randint(1, 3)):
        position = rng.randrange(len(data))
        operation = rng.choice(["replace", "delete", "insert"])
        if operation == "replace":
            data[position] = rng.choice(ALPHABET)
        elif operation == "delete" and len(data) > 1:
            del data[position]
        else:
            data.insert(position, rng.choice(ALPHABET))
    return "".join(data)


def legitimate(user: int, data: str) -> bool:
    """Data the user may legitimately press (not a forgery): a director of organisation 10
    deciding on its applications, the applicant (LISTENER) on her own applications."""
    parsed = decode(data)
    if not isinstance(parsed, AppIntent):
        return False
    if user == LISTENER:
        return APPLICANT.get(parsed.number) == LISTENER - 1000
    return user == DIRECTOR and parsed.action in DECISIONS and parsed.number in NUMBERS


def generate(rng: random.Random, real: list[str]) -> list[Press]:
    presses: list[Press] = []
    while len(presses) < PRESSES:
        kind = rng.randrange(6)
        if kind == 0:
            press = Press(rng.choice([DIRECTOR, OTHER_DIRECTOR]), noise(rng), refused=False)
        elif kind == 1:
            press = Press(DIRECTOR, malformed(rng), refused=False)
        elif kind == 2:  # other organisations' and missing applications
            press = Press(DIRECTOR, well_formed(rng, foreign_number(rng)), refused=True)
        elif kind == 3:  # this organisation's applications, pressed by the other one's director
            press = Press(OTHER_DIRECTOR, well_formed(rng, rng.choice(NUMBERS)), refused=True)
        elif kind == 4:  # any director button, pressed by a listener or a stranger
            number = rng.choice([*NUMBERS, OTHER_ORG_NUMBER])
            data = well_formed(rng, number) if rng.random() < 0.7 else rng.choice(real)
            press = Press(rng.choice([LISTENER, UNLINKED]), data, refused=True)
        else:
            press = Press(DIRECTOR, mutated(rng, real), refused=False)
        if fits(press.data) and not legitimate(press.user, press.data):
            presses.append(press)
    return presses


async def real_buttons(harness: BotHarness) -> list[str]:
    """Callback data of the director's real screens: list, card, prompts, comments, history."""
    menu = await harness.send(DIRECTOR, "/menu")
    screens = [await harness.press(DIRECTOR, menu.buttons()[0][0])]
    screens.append(await harness.press(DIRECTOR, screens[0].buttons()[0][0]))
    for label in ["✅ Одобрить", "Отмена", "❌ Отменить", "Да, отменить", "Отмена"]:
        screens.append(await harness.press(DIRECTOR, label))
    screens.append(await harness.press(DIRECTOR, "💬 Комментарии"))
    screens.append(await harness.press(DIRECTOR, "✍️ Написать комментарий"))
    screens.append(await harness.press(DIRECTOR, "Отмена"))
    screens.append(await harness.press(DIRECTOR, "◀ К заявке"))
    screens.append(await harness.press(DIRECTOR, "🕓 История"))
    return sorted(
        {
            button["callback_data"]
            for message in screens
            for row in (message.reply_markup or {}).get("inline_keyboard", [])
            for button in row
        }
    )


@pytest.mark.usefixtures("school")
async def test_random_and_forged_callback_data_change_nothing(
    harness: BotHarness, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    real = await real_buttons(harness)
    target = {
        user: (await harness.send(user, "/start")).message_id
        for user in (DIRECTOR, OTHER_DIRECTOR, LISTENER, UNLINKED)
    }
    async with unchanged(session_factory):
        presses = generate(random.Random(SEED), real)
        assert sum(press.refused for press in presses) > PRESSES // 3

        queries = [
            (harness.api.press_data(p.user, p.data, target[p.user])["callback_query"]["id"], p)
            for p in presses
        ]
        # All at once, as a polling dispatcher takes them: each user's presses queue on the user's
        # lock, different users' run side by side.
        updates = [
            Update.model_validate(raw, context={"bot": harness.bot})
            for raw in harness.api.take_updates()
        ]
        assert len(updates) == PRESSES
        await asyncio.gather(*(harness.dp.feed_update(harness.bot, update) for update in updates))

    assert harness.api.unanswered_callbacks() == []
    assert not harness.errors.records, [r.getMessage() for r in harness.errors.records]
    for query_id, press in queries:
        answer = harness.api.callback_answer(query_id)
        assert answer is not None
        if press.refused:
            assert answer.get("show_alert") is True, (press, answer)
