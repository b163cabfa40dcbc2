"""Where a benchmark's time goes: cProfile statistics summed by package (own time), and the
functions with the most own time. `python -m bench.updates --profile FILE` profiles the real
Dispatcher's updates; `python -m bench.throughput --profile FILE` the bot process; either
writes cProfile's statistics to FILE (`python -m pstats FILE` reads them) and prints this
summary.

    python -m bench.profiling FILE [--top N]     # the summary of a saved profile
"""

from __future__ import annotations

import argparse
import pstats
import sysconfig
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from bench import report

ROOT = Path(__file__).resolve().parent.parent
OURS = ("bot", "handlers", "services", "storage", "bench", "tests")
STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()
SITE = Path(sysconfig.get_paths()["purelib"]).resolve()


def package_of(filename: str) -> str:
    """Who a function belongs to: our top-level package, a third-party distribution's, the
    standard library's module, or "builtins" (C functions: sockets, json, sqlite3...)."""
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins"
    path = Path(filename).resolve()
    for base, prefix in ((SITE, ""), (ROOT, "ours: "), (STDLIB, "stdlib: ")):
        try:
            parts = path.relative_to(base).parts
        except ValueError:
            continue
        if base == ROOT and parts[0] not in OURS:
            break
        if base == STDLIB and parts[0] == "site-packages":
            continue
        name = parts[0].removesuffix(".py")
        return f"{prefix}{name}"
    return "other"


def summary(stats: pstats.Stats, top: int = 25) -> None:
    """Print own time by package and the functions with the most own time."""
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in entries.values()) or 1e-9
    packages: dict[str, float] = defaultdict(float)
    for (filename, _line, _name), entry in entries.items():
        packages[package_of(filename)] += entry[2]
    print(f"own time by package, of {total:.2f} s profiled:")
    rows = [
        [name, f"{seconds:.2f} s", f"{seconds / total:.0%}"]
        for name, seconds in sorted(packages.items(), key=lambda item: -item[1])
        if seconds / total >= 0.005
    ]
    report.table(["package", "own time", "share"], rows)
    print(f"the {top} functions with the most own time:")
    functions = sorted(entries.items(), key=lambda item: -item[1][2])[:top]
    rows = [
        [
            f"{package_of(filename)} {Path(filename).name}:{line} {name}",
            f"{entry[1]:,}",
            f"{entry[2]:.3f} s",
            f"{entry[3]:.3f} s",
        ]
        for (filename, line, name), entry in functions
    ]
    report.table(["function", "calls", "own", "cumulative"], rows)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profiling", description=__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    summary(pstats.Stats(str(args.file)), args.top)


if __name__ == "__main__":
    main()
