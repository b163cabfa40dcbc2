"""The progress of `python -m bot import`: lines read, applied (created, updated, unchanged or
an older version skipped) and refused.

On a terminal, a live progress bar (tqdm) that ends showing the totals; otherwise (a pipe, a log
file) plain lines of counts, one every PLAIN_INTERVAL seconds of a long import, so a log keeps
them without control characters. Either way the command ends with the counts' line after its
summary (bot/cli/importer.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TextIO

from tqdm import tqdm

from bot.texts import cli

PLAIN_INTERVAL = 10.0  # seconds between two plain count lines of a long import
READ_STEP = 1000  # lines read between two updates while reading


@dataclass(frozen=True)
class Counts:
    read: int
    applied: int
    refused: int
    total: int | None = None  # the lines to go through, once the file is read

    @property
    def done(self) -> int:
        return self.applied + self.refused


def counts_line(counts: Counts) -> str:
    return cli.IMPORT_COUNTS.format(
        read=counts.read, applied=counts.applied, refused=counts.refused
    )


class Progress(Protocol):
    def show(self, counts: Counts) -> None: ...

    def close(self, counts: Counts | None) -> None:
        """End the live display, at `counts` (None: the import stopped before it began)."""


class TerminalProgress:
    """A progress bar: while reading, the lines read; then the lines applied or refused out of
    those read, with the three counts beside it."""

    def __init__(self, stream: TextIO) -> None:
        self.bar = tqdm(
            desc=cli.IMPORT_READING,
            unit=cli.IMPORT_UNIT,
            file=stream,
            dynamic_ncols=True,
            mininterval=0.2,
        )

    def show(self, counts: Counts) -> None:
        bar = self.bar
        if counts.total is not None and bar.total != counts.total:
            bar.reset(total=counts.total)
            bar.set_description_str(cli.IMPORT_LOADING, refresh=False)
        bar.set_postfix_str(
            cli.IMPORT_BAR_COUNTS.format(
                read=counts.read, applied=counts.applied, refused=counts.refused
            ),
            refresh=False,
        )
        position = counts.read if counts.total is None else counts.done
        bar.update(position - bar.n)

    def close(self, counts: Counts | None) -> None:
        if counts is not None:
            self.show(counts)
            self.bar.refresh()
        self.bar.close()


class PlainProgress:
    """Plain lines of counts, at most one every `interval` seconds (the last comes with the
    summary)."""

    def __init__(
        self,
        stream: TextIO,
        *,
        interval: float = PLAIN_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.interval = interval
        self.clock = clock
        self.last = clock()

    def show(self, counts: Counts) -> None:
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now

            print(counts_line(counts), file=self.stream, flush=True)

    def close(self, counts: Counts | None) -> None:
        pass


def progress_for(stream: TextIO) -> Progress:
    """A bar when `stream` is a terminal, plain counts otherwise."""
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        return TerminalProgress(stream)
    return PlainProgress(stream)
