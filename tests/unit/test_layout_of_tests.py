"""Every test file is in the folder of its kind, so that the kind's marker (set by
tests/conftest.py from the folder) selects it: `make test-fast` runs what is marked `unit`."""

from __future__ import annotations

import pytest

from tests.conftest import KINDS, TESTS


def test_every_test_file_is_in_the_folder_of_its_kind() -> None:
    stray = sorted(
        str(path.relative_to(TESTS.parent))
        for path in TESTS.rglob("test_*.py")
        if path.relative_to(TESTS).parts[0] not in KINDS
    )
    assert stray == [], (
        "move these into tests/unit/ (no database, no process), tests/integration/ (storage, "
        "outbox, migrations, the web server on a database), tests/bot/ (the Dispatcher through "
        "feed_update) or tests/e2e/ (real processes)"
    )


def test_each_folder_marks_its_tests(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("unit") is not None
    assert request.node.get_closest_marker("integration") is None


DATABASE_FIXTURES = {"database_url", "engine", "session_factory", "seeded", "harness"}


def test_unit_tests_need_no_database(request: pytest.FixtureRequest) -> None:
    """Of the tests collected with this one, none in tests/unit/ asks for a database."""
    unit = TESTS / "unit"
    using = sorted(
        item.nodeid
        for item in request.session.items
        if item.path.is_relative_to(unit)
        and DATABASE_FIXTURES & set(getattr(item, "fixturenames", ()))
    )
    assert using == [], "these belong in tests/integration/ or tests/bot/"
