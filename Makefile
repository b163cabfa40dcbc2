# Two commands for a fresh machine with Python 3.11+ and make: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-fast lint install bench clean lock lock-check

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Run the bot on the embedded default (SQLite under ./data/, long polling); needs BOT_TOKEN.
run: $(STAMP)
	$(BIN)/python -m bot

## Lint, type-check and run the whole test suite.
test: $(STAMP) lint
	$(BIN)/python -m pytest

## The fast part alone: tests/unit/ (no database, no process; under a minute, README "Tests").
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

## Every benchmark (bench/, docs/BENCHMARKS.md); BENCH_ARGS=--serial-delivery runs the delivery alone.
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

# The Docker image's dependencies, pinned with their hashes: resolved by uv for the image's Python
# (3.12, Linux) from pyproject.toml's dependencies and its build requirements (the image installs
# the project itself without build isolation).
LOCK_PYTHON := 3.12
# What python:3.12-slim's pip takes (Debian, glibc 2.36, x86_64); pip needs each tag spelled out.
LOCK_PLATFORMS := manylinux_2_34_x86_64 manylinux_2_28_x86_64 manylinux_2_17_x86_64 \
	manylinux2014_x86_64 manylinux2010_x86_64 manylinux1_x86_64 linux_x86_64
BUILD_REQUIRES := $(BIN)/python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")'

## Refresh requirements.lock after changing pyproject.toml's dependencies (or to take new releases).
lock: $(STAMP)
	$(BUILD_REQUIRES) | $(BIN)/uv pip compile pyproject.toml - --generate-hashes \
		--python-version $(LOCK_PYTHON) --python-platform linux \
		--custom-compile-command 'make lock' --quiet -o requirements.lock

## Check the lock as the image's pip reads it: download from PyPI what the image installs, each
## file checked against its hash, every dependency of every package pinned in the lock.
lock-check: $(STAMP)
	dir=$$(mktemp -d) && trap 'rm -rf "$$dir"' EXIT && \
	$(BIN)/python -m pip download --isolated --index-url https://pypi.org/simple --quiet \
		--require-hashes --only-binary=:all: \
		--python-version $(LOCK_PYTHON) $(LOCK_PLATFORMS:%=--platform %) \
		--dest "$$dir" -r requirements.lock

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
