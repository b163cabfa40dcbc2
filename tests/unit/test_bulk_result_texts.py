"""The result of a bulk approval counts in words correct for 1, 2 and 5: «уже обработана 1»,
«уже обработаны 2», «уже обработаны 5»; the same for those not approved."""

from __future__ import annotations

import pytest

from bot.screens.bulk import result


@pytest.mark.parametrize(
    ("count", "already", "refused"),
    [
        (1, "уже обработана 1", "не одобрена 1"),
        (2, "уже обработаны 2", "не одобрены 2"),
        (5, "уже обработаны 5", "не одобрены 5"),
        (21, "уже обработана 21", "не одобрена 21"),
    ],
)
def test_the_counts_agree_with_their_words(count: int, already: str, refused: str) -> None:
    numbers = list(range(1, count + 1))
    listed = ", ".join(f"№{n}" for n in numbers[:20]) + (", …" if count > 20 else "")
    assert result(3, numbers, []) == f"Одобрено 3; {already}: {listed}"
    assert result(0, [], numbers) == f"Одобрено 0; {refused}: {listed}"
    assert result(1, numbers, numbers) == f"Одобрено 1; {already}: {listed}; {refused}: {listed}"
