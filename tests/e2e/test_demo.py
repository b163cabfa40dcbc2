"""`python -m bot demo` on a fresh database, against the Bot API double."""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from bot.cli import demo
from services.clock import ManualClock
from storage.db import create_engine, create_session_factory
from storage.models import Account, Application, LinkToken
from tests.fakes.bot_api import FakeBotAPI
from tests.harness import BotHarness, test_settings
from tests.processes import run_bot

LINK = re.compile(r"https://t\.me/(\w+)\?start=([A-Za-z0-9_-]+)")
DIRECTOR_USER = 1001  # a private chat of the Bot API double


async def link_director(harness: BotHarness, token: str) -> None:
    """The director opens the printed link in Telegram and accepts the consent."""
    await harness.send(DIRECTOR_USER, f"/start {token}")
    consent = harness.api.last_bot_message(DIRECTOR_USER)
    assert consent.buttons() == [["Ознакомился"]]
    await harness.press(DIRECTOR_USER, "Ознакомился")
    async with harness.session_factory() as session:
        row = (
            await session.scalars(
                select(LinkToken).where(
                    LinkToken.token_hash == hashlib.sha256(token.encode()).hexdigest()
                )
            )
        ).one()
        assert (row.account_id, row.used_at is not None) == (demo.DIRECTOR_ID, True)


async def run_demo(tmp_path: Path, api: FakeBotAPI) -> tuple[int, str, str]:
    return await run_bot(tmp_path, "demo", BOT_TOKEN=api.token, TELEGRAM_API_URL=api.url)


async def test_demo_loads_thirty_applications_and_prints_two_links(
    tmp_path: Path, api: FakeBotAPI
) -> None:
    database = tmp_path / "bot.sqlite3"
    assert not database.exists()
    code, out, err = await run_demo(tmp_path, api)
    assert (code, err) == (0, "")
    assert out.startswith(
        "Демонстрационные данные загружены: ОО — 3, учётных записей — 14, заявок — 30."
    )
    assert "Руководитель ОО (Соколова Ирина Владимировна, МАОУ «Средняя" in out
    assert "Заявитель (Кравцова Юлия Олеговна):" in out
    links = LINK.findall(out)
    assert [username for username, _ in links] == [api.bot_username] * 2

    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    try:
        async with create_session_factory(engine)() as session:
            statuses = Counter(
                (
                    await session.scalars(
                        select(Application.status).where(
                            Application.organization_id == demo.DEMO_SCHOOL
                        )
                    )
                ).all()
            )
            assert statuses == {"new": 12, "approved": 8, "included": 6, "cancelled": 4}
            assert await session.scalar(select(func.count()).select_from(Application)) == 30
            director = await session.get(Account, demo.DIRECTOR_ID)
            assert director is not None
            assert (director.organization_id, director.role_codes) == (
                demo.DEMO_SCHOOL,
                ["director"],
            )
            # each link is a one-time portal token of its account
            for (_, token), account_id in zip(
                links, (demo.DIRECTOR_ID, demo.APPLICANT_ID), strict=True
            ):
                row = (
                    await session.scalars(
                        select(LinkToken).where(
                            LinkToken.token_hash == hashlib.sha256(token.encode()).hexdigest()
                        )
                    )
                ).one()
                assert (row.kind, row.account_id, row.used_at) == ("portal", account_id, None)
                assert (row.expires_at - row.created_at).total_seconds() == 600
    finally:
        await engine.dispose()


async def test_demo_again_keeps_the_data_and_gives_new_links(
    tmp_path: Path, api: FakeBotAPI
) -> None:
    _, first, _ = await run_demo(tmp_path, api)
    code, second, _ = await run_demo(tmp_path, api)
    assert code == 0
    assert set(LINK.findall(first)).isdisjoint(LINK.findall(second))
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}")
    try:
        async with create_session_factory(engine)() as session:
            assert await session.scalar(select(func.count()).select_from(Application)) == 30
    finally:
        await engine.dispose()


async def test_demo_with_a_rejected_token_says_so(tmp_path: Path, api: FakeBotAPI) -> None:
    code, out, err = await run_bot(
        tmp_path, "demo", BOT_TOKEN="123456:rejected", TELEGRAM_API_URL=api.url
    )
    assert (code, out) == (2, "")
    assert err.strip().startswith("Ошибка настройки: BOT_TOKEN отклонён сервером Telegram")
    assert not (tmp_path / "bot.sqlite3").exists()


def test_demo_set_covers_every_status_with_seed_like_programmes() -> None:
    items = demo.applications(datetime(2026, 9, 1, 6, 0, tzinfo=UTC))
    assert len(items) == 30
    assert {data.status for _, data in items} == set(demo.Status)
    assert items[0][1].program is not None
    assert items[0][1].program.startswith("Диагностика личностно профессионального развития")
    for _, data in items:
        assert data.study_from is not None
        assert data.study_to is not None
        assert data.study_from.weekday() == 0
        assert (data.study_to - data.study_from).days == 4


async def test_the_demo_director_sees_thirty_applications_in_their_statuses(
    tmp_path: Path, api: FakeBotAPI
) -> None:
    """The printed director link, redeemed in Telegram, shows the director the demo school's
    applications: 12 «Не обработана», 8 «Подтверждена», 6 «Включен в группу», 4 «Отменена»."""
    _, out, _ = await run_demo(tmp_path, api)
    director_link = LINK.findall(out)[0]
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    engine = create_engine(url)
    clock = ManualClock(datetime.now(UTC))  # the tokens were minted on the system clock
    harness = BotHarness(api, test_settings(api, url), create_session_factory(engine), clock)
    try:
        await link_director(harness, director_link[1])
        menu = await harness.send(DIRECTOR_USER, "/menu")
        assert "Вы вошли как Соколова Ирина Владимировна, роль «Руководитель ОО»" in menu.text
        assert menu.buttons()[0] == ["📥 Заявки (12 новых)"]
        listing = await harness.press(DIRECTOR_USER, "📥 Заявки (12 новых)")
        assert "Найдено: 12" in listing.text
        for label, total in (
            ("Все", 30),
            ("Подтверждена", 8),
            ("Включен в группу", 6),
            ("Отменена", 4),
            ("Не обработана", 12),
        ):
            listing = await harness.press(DIRECTOR_USER, label)
            assert f"Найдено: {total}" in listing.text, label
        harness.assert_no_errors()
    finally:
        await harness.close()
        await engine.dispose()
