"""The benchmarks (bench/) still run: each part on a tiny database with a handful of updates,
its figures printed. Nothing here checks a speed (that is what bench/ reports); it checks that
each benchmark did the work it measures."""

from __future__ import annotations

import argparse
import pstats
from pathlib import Path

import pytest

from bench import data, delivery, ingest, latency, memory, replicas, throughput, updates
from bench.process import CYCLE_DECISIONS, CYCLE_UPDATES, mixed_workload


async def test_cost_per_update(capsys: pytest.CaptureFixture[str]) -> None:
    result = await updates.measure("sqlite", data.TINY, rounds=3, warmup=1, directors=2)

    updates.print_result(result)
    assert result.errors == 0
    assert result.approved == 4  # one approval a round, warm-up included
    assert all(len(result.times[operation]) == 3 for operation in updates.OPERATIONS)
    assert "(1) Cost per update" in capsys.readouterr().out


async def test_throughput_and_memory(capsys: pytest.CaptureFixture[str]) -> None:
    run = await mixed_workload("sqlite", data.TINY, directors=2, cycles=1)

    throughput.print_throughput(run)
    memory.print_memory(run)
    assert run.workload.updates == 2 * CYCLE_UPDATES
    assert run.workload.unanswered == 0
    assert run.decisions_written == 2 * CYCLE_DECISIONS
    assert run.errors == {}
    assert run.memory_after["VmHWM"] > 0
    output = capsys.readouterr().out
    assert "(2) Throughput" in output
    assert "(5) Memory" in output


async def test_delivery(capsys: pytest.CaptureFixture[str]) -> None:
    result = await delivery.measure("sqlite", data.TINY, messages=12, chats=6)

    delivery.print_delivery(result)
    assert result.sent == 12
    assert result.states == {"sent": 12}
    assert result.too_many_requests == 0
    assert "(3) Delivery to Telegram" in capsys.readouterr().out


async def test_delivery_to_max(capsys: pytest.CaptureFixture[str]) -> None:
    """The dispatcher with MAX only, through the MAX double: every row goes to its MAX dialog."""
    result = await delivery.measure(
        "sqlite", data.TINY, messages=12, chats=6, messenger=delivery.MAX
    )

    delivery.print_delivery(result)
    assert result.messenger is delivery.MAX
    assert result.sent == 12
    assert result.states == {"sent": 12}
    assert result.too_many_requests == 0
    assert result.errors == {}
    output = capsys.readouterr().out
    assert "(3) Delivery to MAX" in output
    assert "MAX_NOTIFY_RATE=20" in output


async def test_ingest(capsys: pytest.CaptureFixture[str]) -> None:
    result = await ingest.measure("sqlite", data.TINY, put=5, batched=10, batch_size=4)

    ingest.print_ingest(result)
    assert result.statuses == {"PUT 201": 5, "POST batch 200": 3}
    assert result.stored == 15
    assert "(4) Ingest" in capsys.readouterr().out


async def test_latency_of_a_push(capsys: pytest.CaptureFixture[str]) -> None:
    result = await latency.measure("sqlite", data.TINY, 3, latency.IN_BOT)

    latency.print_latency(result)
    assert len(result.samples) == 3
    assert result.missing == 0
    assert "(6) Latency of a decision's push" in capsys.readouterr().out


async def test_bulk_approval(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import bulk

    results = await bulk.measure(count=5, rounds=1)

    bulk.print_result(5, results)
    [(_, _, events, outbox)] = results
    assert (events, outbox) == (5, 10)  # a history row, a push and a webhook row each
    assert "Bulk approval of 5 applications" in capsys.readouterr().out


async def test_export(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import export

    results = await export.measure(count=30, rounds=1)

    export.print_result(30, results)
    [(_, rows, size)] = results
    assert rows == 30
    assert size > 0
    assert "«📤 Выгрузить» of 30 applications" in capsys.readouterr().out


@pytest.mark.skipif(
    data.postgres_base_url() is None or replicas.redis_url() is None,
    reason="the scale-out needs PostgreSQL and Redis: set TEST_DATABASE_URL and TEST_REDIS_URL",
)
async def test_scale_out(capsys: pytest.CaptureFixture[str]) -> None:
    measured = await replicas.run(data.TINY, directors=2, cycles=1)

    assert measured is not None
    for run, count in zip(measured, (1, 2), strict=True):
        assert run.replicas == count
        assert run.workload.updates == 2 * CYCLE_UPDATES
        assert run.workload.unanswered == 0
        assert run.errors == {}
    assert "replica-2" in measured[1].cpu.used
    assert "two replicas / one" in capsys.readouterr().out


async def test_profiles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--profile: cProfile's statistics written and summarised, for part 1 and for the bot
    process of part 2."""
    part1, part2 = str(tmp_path / "updates"), str(tmp_path / "throughput")
    await updates.run(["sqlite"], data.TINY, rounds=2, warmup=1, directors=2, profile=part1)
    await throughput.run(["sqlite"], data.TINY, directors=2, cycles=1, profile=part2)

    for path in (part1, part2):
        assert pstats.Stats(f"{path}.sqlite").total_calls > 0  # type: ignore[attr-defined]
    output = capsys.readouterr().out
    assert output.count("own time by package") == 2
    assert "ours: bot" in output


async def test_the_whole_run_ends_with_every_goal(capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m bench --tiny` on SQLite: every part, then the goals with their figures and
    verdicts (the scale-out says it needs PostgreSQL)."""
    from bench.__main__ import run_all

    args = argparse.Namespace(
        tiny=True, backend=["sqlite"], serial_delivery=False, quick_delivery=False
    )
    await run_all(args)

    output = capsys.readouterr().out
    summary = output.split("\nGoals\n=====\n", 1)[1]
    for goal in (
        "open list <= 10x the floor",
        "approve with a comment <= 15x the floor",
        ">= 300 mixed updates/s in one process",
        "a decision's push p50 <= 300 ms",
        "peak RSS <= 150 MiB, both front ends",
        "batched ingest >= 2,000",
        "delivery >= 95% of NOTIFY_RATE",
        "delivery >= 95% of MAX_NOTIFY_RATE",
        "python -m bench < 10 min",
    ):
        [line] = [line for line in summary.splitlines() if goal in line]
        assert line.rstrip().endswith(("met", "MISSED")), line
    assert "(7) Scale-out: not measured (needs PostgreSQL" in output
    assert "goals met," in summary
