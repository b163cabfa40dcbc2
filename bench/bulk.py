"""Bulk approval: a director approves 100 «Не обработана» applications in one update.

One press of «✅ Одобрить без комментария» after «✅ Одобрить все (100)», through the real
runner (bot/conversation/runner.py: the lock, one transaction, exactly once), on a fresh
SQLite file: each application through the same race-safe decision, its history row, the push
to its applicant and the decisions-webhook row written to the outbox (queued, not sent: the
dispatcher is not running). Goal of issue 15: ≤ 2 s.

    python -m bench.bulk [--count 100] [--rounds 5]
"""

from __future__ import annotations

import statistics

from sqlalchemy import func, select

from bench import one_update
from bench.one_update import migrated, runner_on_fresh_sqlite, timed_press
from bot.conversation.effects import Effect
from bot.conversation.intents import BulkAction, BulkIntent
from bot.conversation.turn import Press
from storage.models import ApplicationEvent, OutboxMessage
from tests import factories

GOAL_SECONDS = 2.0
DIRECTOR = 1
SCHOOL = 10


class Quiet:
    """An executor that shows nothing: only the update's own work is timed."""

    async def execute(self, effects: list[Effect]) -> None:
        return None


async def seed(url: str, count: int) -> None:
    async with migrated(url) as session:
        session.add(factories.organization(SCHOOL))
        await session.flush()
        bound = {"consent": True}
        session.add(
            factories.account(
                DIRECTOR,
                "Петров Пётр Петрович",
                SCHOOL,
                "director",
                active_role="director",
                **bound,
            )
        )
        for i in range(count):
            applicant = 100 + i
            session.add(
                factories.account(
                    applicant,
                    f"Заявитель{i} Иван",
                    SCHOOL,
                    "listener",
                    active_role="listener",
                    **bound,
                )
            )
        await session.flush()
        session.add(factories.binding(DIRECTOR, DIRECTOR + 1000))
        for i in range(count):
            session.add(factories.binding(100 + i, 100 + i + 1000))
            session.add(factories.application(40000 + i, 100 + i, SCHOOL, "new"))
        await session.commit()


async def one_round(count: int) -> tuple[float, float, int, int]:
    """(seconds to confirm, seconds to approve, history rows, outbox rows)."""
    async with runner_on_fresh_sqlite(
        "bulk.sqlite3",
        lambda url: seed(url, count),
        DPO_WEBHOOK_URL="http://127.0.0.1:9/decisions",
        DPO_WEBHOOK_SECRET="b" * 32,
    ) as runner:
        times = []
        for update_id, action in enumerate((BulkAction.ALL, BulkAction.APPROVE), start=1):
            press = Press(BulkIntent(action).pack(), "1")
            times.append(await timed_press(runner, DIRECTOR + 1000, press, update_id, Quiet()))
        async with runner.session_factory() as session:
            events = await session.scalar(select(func.count()).select_from(ApplicationEvent))
            outbox = await session.scalar(select(func.count()).select_from(OutboxMessage))
    return times[0], times[1], int(events or 0), int(outbox or 0)


async def measure(count: int, rounds: int) -> list[tuple[float, float, int, int]]:
    return [await one_round(count) for _ in range(rounds)]


def print_result(count: int, results: list[tuple[float, float, int, int]]) -> None:
    confirm = statistics.median(r[0] for r in results)
    approve = statistics.median(r[1] for r in results)
    events, outbox = results[-1][2], results[-1][3]
    met = "**met**" if approve <= GOAL_SECONDS else "missed"
    one_update.markdown_table(
        f"(bulk) Bulk approval of {count} applications in one update, SQLite",
        ["figure", "value", "goal"],
        [
            [f"confirmation «Одобрить все ({count})», median", f"{confirm * 1000:.0f} ms", ""],
            [
                f"approval of {count}, median / worst of {len(results)}",
                one_update.median_and_worst([r[1] for r in results]),
                f"<= {GOAL_SECONDS:.0f} s: {met}",
            ],
            ["history rows / outbox rows written (pushes + webhook)", f"{events} / {outbox}", ""],
        ],
    )


def main() -> None:
    one_update.main(__doc__, 100, 5, measure, print_result)


if __name__ == "__main__":
    main()
