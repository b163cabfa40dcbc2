"""Export: «📤 Выгрузить» of a list of 10,000 applications as one .xlsx document, in one update.

A staff member presses «📤 Выгрузить» on «Все» across organisations, through the real runner
(bot/conversation/runner.py), on a fresh SQLite file: the query of every page, the workbook
built (XlsxWriter), the document handed to the executor (which here keeps it, sending nothing).

    python -m bench.export [--count 10000] [--rounds 3]
"""

from __future__ import annotations

from bench import one_update
from bench.one_update import migrated, runner_on_fresh_sqlite, timed_press
from bot.conversation.effects import Document, Effect
from bot.conversation.intents import ListAction, ListFilter, ListIntent
from bot.conversation.turn import Press
from tests import factories

STAFF = 7
ORGANISATIONS = 50


class Keep:
    """An executor that keeps the document instead of sending it."""

    def __init__(self) -> None:
        self.documents: list[Document] = []

    async def execute(self, effects: list[Effect]) -> None:
        self.documents += [effect for effect in effects if isinstance(effect, Document)]


async def seed(url: str, count: int) -> None:
    async with migrated(url) as session:
        session.add_all(factories.organization(10 + i) for i in range(ORGANISATIONS))
        await session.flush()
        session.add(
            factories.account(
                STAFF,
                "Иванова Ольга Николаевна",
                None,
                "staff",
                active_role="staff",
                consent=True,
            )
        )
        session.add_all(
            factories.account(1000 + i, f"Заявитель{i} Иван Иванович", 10 + i % 50, "listener")
            for i in range(count)
        )
        await session.flush()
        session.add(factories.binding(STAFF, STAFF + 1000))
        session.add_all(
            factories.application(50000 + i, 1000 + i, 10 + i % ORGANISATIONS, "approved")
            for i in range(count)
        )
        await session.commit()


async def one_round(count: int) -> tuple[float, int, int]:
    """(seconds of the update, rows exported, bytes of the file)."""
    async with runner_on_fresh_sqlite("export.sqlite3", lambda url: seed(url, count)) as runner:
        press = Press(ListIntent(action=ListAction.EXPORT, status_filter=ListFilter.ALL).pack())
        keep = Keep()
        elapsed = await timed_press(runner, STAFF + 1000, press, 1, keep)
    [document] = keep.documents
    rows = int(document.caption.split(":", 1)[1].split(".", 1)[0])
    return elapsed, rows, len(document.content)


async def measure(count: int, rounds: int) -> list[tuple[float, int, int]]:
    return [await one_round(count) for _ in range(rounds)]


def print_result(count: int, results: list[tuple[float, int, int]]) -> None:
    _, rows, size = results[-1]
    one_update.markdown_table(
        f"(export) «📤 Выгрузить» of {count} applications in one update, SQLite",
        ["figure", "value"],
        [
            [
                f"export of {rows} rows, median / worst of {len(results)}",
                one_update.median_and_worst([r[0] for r in results]),
            ],
            [".xlsx size", f"{size / 1024:.0f} KiB"],
        ],
    )


def main() -> None:
    one_update.main(__doc__, 10_000, 3, measure, print_result)


if __name__ == "__main__":
    main()
