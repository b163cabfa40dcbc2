"""A process's stop goes on past a part that hangs (bot/process/stopping.py): the part is cut
short after its time, one that ends in time is waited for, and a part's error comes out."""

from __future__ import annotations

import asyncio

import pytest

from bot.process.stopping import within


async def test_a_part_that_hangs_is_cut_short_and_the_stop_goes_on() -> None:
    forever = asyncio.Event()
    cut: list[bool] = []

    async def stuck() -> None:
        try:
            await forever.wait()
        except asyncio.CancelledError:
            cut.append(True)
            raise

    await within("a stuck part", stuck(), seconds=0.05)
    assert cut == [True]  # cancelled, and the stop went on


async def test_a_part_that_ends_in_time_is_waited_for() -> None:
    ended: list[bool] = []

    async def quick() -> None:
        await asyncio.sleep(0)
        ended.append(True)

    await within("a quick part", quick(), seconds=5)
    assert ended == [True]


async def test_a_parts_error_comes_out() -> None:
    async def failing() -> None:
        raise RuntimeError("broken")

    with pytest.raises(RuntimeError, match="broken"):
        await within("a failing part", failing(), seconds=5)
