"""`python -m bot import FILE`: JSON Lines and CSV, errors with line numbers, batches."""

from __future__ import annotations

import fcntl
import io
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.cli import importer
from bot.cli.progress import PlainProgress, TerminalProgress, progress_for
from services import integration
from services.clock import ManualClock
from services.linking import snils_hash
from storage.models import Account, Application, ApplicationEvent, Organization, OutboxMessage
from storage.repositories import Repositories
from tests.api_support import count
from tests.harness import SNILS_KEY
from tests.linking_support import FULLWIDTH_SNILS
from tests.processes import bot_env, run_bot

APPLICATION = {
    "type": "application",
    "number": 39744,
    "applicant_id": 3,
    "organization_id": 10,
    "program": "Цифровая трансформация как фактор развития информационно-управленческой "
    "культуры руководства образовательной организацией",
    "study_from": "2026-09-06",
    "study_to": "2026-09-10",
    "status": "new",
    "version": 1,
}
# What the files with one good line of each type load, whatever their other lines.
ONE_OF_EACH = {
    "organization": {"created": 1},
    "account": {"created": 1},
    "application": {"created": 1},
}


def jsonl(tmp_path: Path, *lines: Any, name: str = "export.jsonl") -> Path:
    path = tmp_path / name
    path.write_text(
        "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n",
        encoding="utf-8",
    )
    return path


async def load(
    path: Path,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    *,
    notify: bool = True,
    snils_key: str | None = SNILS_KEY,
) -> importer.ImportReport:
    return await importer.import_file(
        path, session_factory, snils_key=snils_key, notify=notify, clock=clock
    )


def counts(report: importer.ImportReport) -> dict[str, dict[str, int]]:
    return {
        kind: {result.value: n for result, n in results.items() if n}
        for kind, results in report.results.items()
    }


async def test_jsonl_in_any_order_with_errors_by_line(
    tmp_path: Path, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    path = jsonl(
        tmp_path,
        APPLICATION,  # before its organisation and applicant: kinds are loaded in order
        {"type": "organization", "id": 10, "name": "МАОУ «СОШ № 10»", "municipality": "Челябинск"},
        "",
        {
            "type": "account",
            "id": 3,
            "full_name": "Войсковая Юлия Олеговна",
            "organization_id": 10,
            "roles": ["listener"],
            "snils": "112-233-445 95",
        },
        {"type": "account", "id": 4, "full_name": " ", "organization_id": 10},
        {**APPLICATION, "number": 39745, "applicant_id": 99},
        "not json",
        {"type": "school", "id": 1},
        {"id": 1},
        {**APPLICATION, "number": 39746, "version": "1"},
    )
    report = await load(path, session_factory, clock)
    assert counts(report) == ONE_OF_EACH
    assert report.error_lines() == [
        "строка 5: full_name: не может быть пустым",
        "строка 6: applicant_id: учётная запись 99 не найдена",
        "строка 7: строка — не JSON-объект",
        "строка 8: type: ожидается organization, account или application",
        "строка 9: type: обязательное поле (organization, account или application)",
        "строка 10: version: ожидается целое число",
    ]
    assert report.summary()[-1] == "Не загружено строк: 6"
    async with session_factory() as session:
        account = await session.get(Account, 3)
        assert account is not None
        assert account.snils_hash == snils_hash("11223344595", SNILS_KEY)
        event = (await session.scalars(select(ApplicationEvent))).one()
        assert (event.action, event.source, event.actor_role) == ("create", "cli", None)
        # an import is not a decision made here: the web module does not get it back
        assert await Repositories(session).events.decisions(after=0, limit=10) == []


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    "moment", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "1969-12-31T23:59:59Z"]
)
async def test_a_moment_out_of_range_is_a_bad_line_and_the_import_goes_on(
    tmp_path: Path,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    moment: str,
) -> None:
    bad = {**APPLICATION, "created_at": moment}
    path = jsonl(tmp_path, bad, {**APPLICATION, "number": 39745})
    csv_path = tmp_path / "export.csv"
    csv_path.write_text(
        "number,applicant_id,organization_id,status,version,created_at\n"
        f"39746,3,10,new,1,{moment}\n"
        "39747,3,10,new,1,2026-09-01T09:12:00+05:00\n",
        encoding="utf-8",
    )
    message = "created_at: дата вне допустимого диапазона: от 1970 до 2200 года"
    report = await load(path, session_factory, clock)
    assert (counts(report)["application"], report.error_lines()) == (
        {"created": 1},
        [f"строка 1: {message}"],
    )
    report = await load(csv_path, session_factory, clock)
    assert (counts(report)["application"], report.error_lines()) == (
        {"created": 1},
        [f"строка 2: {message}"],
    )
    async with session_factory() as session:
        numbers = set(await session.scalars(select(Application.number)))
    assert numbers == {39745, 39747}


async def test_a_snils_in_other_digits_is_a_bad_line(
    tmp_path: Path, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    path = jsonl(
        tmp_path,
        {"type": "organization", "id": 10, "name": "МАОУ «СОШ № 10»"},
        {"type": "account", "id": 3, "full_name": "Войсковая Ю. О.", "snils": FULLWIDTH_SNILS},
        {"type": "account", "id": 4, "full_name": "Новикова Е. А.", "snils": "11223344595"},
    )
    report = await load(path, session_factory, clock)
    assert report.error_lines() == [
        "строка 2: snils: СНИЛС — 11 цифр 0–9, можно с пробелами и дефисами, "
        "например 112-233-445 95"
    ]
    async with session_factory() as session:
        assert await session.get(Account, 3) is None
        account = await session.get(Account, 4)
        assert account is not None
        assert account.snils_hash == snils_hash("11223344595", SNILS_KEY)


@pytest.mark.usefixtures("seeded")
async def test_import_again_changes_nothing_and_notifies_like_the_api(
    tmp_path: Path, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    path = jsonl(tmp_path, APPLICATION, {**APPLICATION, "number": 39747, "status": "approved"})
    report = await load(path, session_factory, clock)
    assert counts(report)["application"] == {"created": 2}
    async with session_factory() as session:
        rows = (await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all()
    # the new, unprocessed application goes to both directors of organisation 10
    assert [(r.kind, r.account_id, r.application_number) for r in rows] == [
        ("new_application", 1, 39744),
        ("new_application", 2, 39744),
    ]
    report = await load(path, session_factory, clock)
    assert counts(report)["application"] == {"unchanged": 2}
    assert not report.errors
    assert await count(session_factory, OutboxMessage) == 2


@pytest.mark.usefixtures("seeded")
async def test_no_notify_for_a_first_load(
    tmp_path: Path, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    report = await load(jsonl(tmp_path, APPLICATION), session_factory, clock, notify=False)
    assert counts(report)["application"] == {"created": 1}
    assert await count(session_factory, OutboxMessage) == 0


async def test_csv_with_a_type_column_semicolons_and_a_bom(
    tmp_path: Path, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "type;id;number;name;municipality;full_name;organization_id;roles;applicant_id;status;"
        "version;program;study_from\n"
        "organization;20;;МБОУ «Лицей № 13»;г. Магнитогорск;;;;;;;;\n"
        "account;6;;;;Кузнецова Мария Сергеевна;20;director, listener;;;;;\n"
        'application;;39800;;;;20;;6;approved;2;"Программа; с точкой с запятой\n'
        'на две строки";2026-10-01\n'
        "application;;39801;;;;20;;6;approved;x;;\n"
        "account;7;39802;;;Иванова Ольга Николаевна;;staff;;;;;\n"
        "school;1;;;;;;;;;;;\n",
        encoding="utf-8-sig",
    )
    report = await load(path, session_factory, clock)
    assert counts(report) == ONE_OF_EACH
    assert report.error_lines() == [
        "строка 6: version: ожидается целое число",
        "строка 7: number: поле не относится к типу account",
        "строка 8: type: ожидается organization, account или application",
    ]
    async with session_factory() as session:
        account = await session.get(Account, 6)
        assert account is not None
        assert account.role_codes == ["director", "listener"]
        application = await session.get(Application, 39800)
        assert application is not None
        assert application.program == "Программа; с точкой с запятой\nна две строки"
        assert application.study_from.isoformat() == "2026-10-01"
        assert application.version == 2


@pytest.mark.usefixtures("seeded")
async def test_csv_of_one_kind_without_a_type_column(
    tmp_path: Path, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    path = tmp_path / "applications.csv"
    path.write_text(
        "number,applicant_id,organization_id,program,status,version\n"
        "501,3,10,Диагностика,new,1\n"
        "502,4,10,,cancelled,1\n"
        "503,4,10,,,1\n",
        encoding="utf-8",
    )
    report = await load(path, session_factory, clock)
    assert counts(report)["application"] == {"created": 2}
    assert report.error_lines() == ["строка 4: status: обязательное поле"]
    async with session_factory() as session:
        application = await session.get(Application, 502)
        assert application is not None
        assert (application.status, application.program) == ("cancelled", None)


async def test_csv_with_unknown_columns_is_refused_whole(
    tmp_path: Path, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    path = tmp_path / "organizations.csv"
    path.write_text("id,name,inn\n10,Школа,7401\n", encoding="utf-8")
    report = await load(path, session_factory, clock)
    assert report.error_lines() == ["строка 1: неизвестные столбцы: inn"]
    assert await count(session_factory, Organization) == 0


async def test_valid_lines_are_committed_in_batches_and_a_refused_line_fails_alone(
    tmp_path: Path,
    session_factory: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    upsert = integration.upsert_organization

    async def refuse_13(repo: Repositories, organization_id: int, *args: Any, **kw: Any) -> Any:
        if organization_id == 13:  # a conflict no check foresaw, found by the database
            raise IntegrityError("INSERT", {}, Exception("duplicate key"))
        return await upsert(repo, organization_id, *args, **kw)

    monkeypatch.setattr(integration, "upsert_organization", refuse_13)
    lines = [{"type": "organization", "id": n, "name": f"Школа № {n}"} for n in range(10, 17)]
    report = importer.ImportReport()
    records = importer.read_file(jsonl(tmp_path, *lines), report)
    await importer.write_lines(
        session_factory,
        records,
        report,
        snils_key=None,
        notify=True,
        clock=clock,
        batch_size=3,
    )
    assert counts(report) == {"organization": {"created": 6}, "account": {}, "application": {}}
    assert report.error_lines() == ["строка 4: база данных отклонила строку: duplicate key"]
    assert await count(session_factory, Organization) == 6


async def test_command_exit_codes(tmp_path: Path) -> None:
    good = jsonl(tmp_path, {"type": "organization", "id": 10, "name": "Школа"}, name="good.jsonl")
    code, out, err = await run_bot(tmp_path, "import", str(good))
    assert (code, out.splitlines()[0], err) == (0, "ОО: создано 1", "")

    bad = jsonl(tmp_path, {"type": "organization", "id": 11}, "{", name="bad.jsonl")
    code, out, err = await run_bot(tmp_path, "import", str(bad))
    assert code == 1
    assert "Не загружено строк: 2" in out
    assert err.splitlines() == [
        "строка 1: name: обязательное поле",
        "строка 2: строка — не JSON-объект",
    ]

    # A moment with no UTC datetime (before 0001-01-01T00:00Z) is a bad line, not a crash.
    extreme = jsonl(
        tmp_path,
        {"type": "organization", "id": 10, "name": "Школа"},
        {"type": "account", "id": 3, "full_name": "Войсковая Юлия Олеговна", "organization_id": 10},
        {**APPLICATION, "created_at": "0001-01-01T00:00:00+01:00"},
        {**APPLICATION, "number": 39745},
        name="extreme.jsonl",
    )
    code, out, err = await run_bot(tmp_path, "import", str(extreme))
    assert code == 1
    assert "Заявки: создано 1" in out
    assert err.splitlines() == [
        "строка 3: created_at: дата вне допустимого диапазона: от 1970 до 2200 года"
    ]

    code, _, err = await run_bot(tmp_path, "import", str(tmp_path / "missing.csv"))
    assert code == 1
    assert err.strip().endswith("missing.csv: файл не найден")


# -- progress -----------------------------------------------------------------------------------


def export_of(tmp_path: Path, applications: int) -> Path:
    """An export of one school, one applicant and `applications` applications, one of them
    refused (no status)."""
    rows: list[Any] = [
        {"type": "organization", "id": 10, "name": "Школа"},
        {"type": "account", "id": 3, "full_name": "Войсковая Юлия Олеговна", "organization_id": 10},
    ]
    rows += [{**APPLICATION, "number": 50_000 + n} for n in range(applications - 1)]
    rows.append({key: value for key, value in APPLICATION.items() if key != "status"})
    return jsonl(tmp_path, *rows, name="large.jsonl")


async def test_plain_counts_when_the_output_is_not_a_terminal(tmp_path: Path) -> None:
    path = export_of(tmp_path, 3)
    code, out, err = await run_bot(tmp_path, "import", str(path), "--no-notify")
    assert code == 1
    assert out.splitlines() == [
        "ОО: создано 1",
        "Учётные записи: создано 1",
        "Заявки: создано 2",
        "Не загружено строк: 1",
        "Строк прочитано: 5, загружено: 4, отклонено: 1",
    ]
    assert "\r" not in out
    assert "\x1b" not in out
    assert err.splitlines() == ["строка 5: status: обязательное поле"]


async def test_plain_counts_of_a_long_import_come_while_it_runs(
    tmp_path: Path, session_factory: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    """A plain line every `interval` seconds (here each time the clock is asked after a second
    has passed: once per batch), counts growing."""
    stream = io.StringIO()
    ticks = iter(range(0, 100))
    progress = PlainProgress(stream, interval=1.0, clock=lambda: float(next(ticks)))
    report = await importer.import_file(
        export_of(tmp_path, 5),
        session_factory,
        snils_key=SNILS_KEY,
        notify=False,
        clock=clock,
        batch_size=2,
        progress=progress,
    )
    assert counts(report)["application"] == {"created": 4}
    lines = stream.getvalue().splitlines()
    assert lines[0] == "Строк прочитано: 7, загружено: 0, отклонено: 1"  # the file read
    assert lines[1:] == [
        "Строк прочитано: 7, загружено: 2, отклонено: 1",
        "Строк прочитано: 7, загружено: 4, отклонено: 1",
        "Строк прочитано: 7, загружено: 6, отклонено: 1",
    ]


def test_a_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    """The real command with its output on a pseudo-terminal: a bar redrawn in place (carriage
    returns), reading then loading, ending at every line done, with the three counts."""
    path = export_of(tmp_path, 1200)
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 160, 0, 0))  # 160 columns
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "import", str(path), "--no-notify"],
        cwd=tmp_path,
        env=bot_env(tmp_path),
        stdout=child,
        stderr=subprocess.PIPE,
    )
    os.close(child)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    assert process.wait(timeout=120) == 1
    assert process.stderr is not None
    assert process.stderr.read().decode().splitlines() == ["строка 1202: status: обязательное поле"]
    out = b"".join(chunks).decode()
    assert "\r" in out
    assert "Чтение" in out
    assert "Загрузка" in out
    assert "1202/1202" in out
    assert "прочитано 1202, загружено 1201, отклонено 1" in out
    assert out.rstrip().splitlines()[-1] == "Строк прочитано: 1202, загружено: 1201, отклонено: 1"
    assert "Заявки: создано 1199" in out


def test_the_display_follows_the_output() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = progress_for(Terminal())
    assert isinstance(terminal, TerminalProgress)
    terminal.close(None)
    assert isinstance(progress_for(io.StringIO()), PlainProgress)
