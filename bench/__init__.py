"""Benchmarks (issue 8): cost per update against aiogram's own floor, throughput of one process,
delivery against Telegram's limits, ingest through the integration API, memory of the bot process.

Run everything with `python -m bench` (or `make bench`), one part with `python -m bench.<part>`.
Figures go to stdout with how they were run; docs/BENCHMARKS.md keeps the latest ones. Nothing
here runs in the test suite except tests/integration/test_bench_smoke.py on tiny sizes.
"""
