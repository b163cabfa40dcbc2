"""Statistics and printing shared by the benchmarks."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(samples: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (share 0.99 for p99) of a non-empty sample."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def title(text: str) -> None:
    print()
    print(text)
    print("=" * len(text), flush=True)


def lines(items: Sequence[str]) -> None:
    for item in items:
        print(item)


def table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> None:
    """A plain-text table, the first `left` columns left-aligned, the others right-aligned."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        cells = [
            str(cell).ljust(widths[i]) if i < left else str(cell).rjust(widths[i])
            for i, cell in enumerate(row)
        ]
        return "  ".join(cells).rstrip()

    print(line(header))
    print(line(["-" * width for width in widths]))
    for row in rows:
        print(line(row))
    print(flush=True)


@dataclass(frozen=True)
class Goal:
    """One figure measured against its goal, for the summary `python -m bench` ends with."""

    goal: str  # what is aimed at, e.g. "open list <= 10x the floor"
    where: str  # the part and the backend, e.g. "(1) SQLite"
    result: str  # the figure, e.g. "16.2x"
    met: bool


def backend(database: str) -> str:
    """ "SQLite" or "PostgreSQL", from bench.machine.database's description."""
    return database.split(maxsplit=1)[0]


def goals_table(goals: Sequence[Goal]) -> None:
    """Every goal with its figure and whether it was met."""
    title("Goals")
    table(
        ["goal", "measured", "result", "verdict"],
        [[g.goal, g.where, g.result, verdict(g.met)] for g in goals],
        left=2,
    )
    missed = sum(not g.met for g in goals)
    print(f"{len(goals) - missed} of {len(goals)} goals met, {missed} missed", flush=True)
