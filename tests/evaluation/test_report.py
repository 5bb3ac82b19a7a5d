"""Report labels: horizons named in the largest whole unit."""

from __future__ import annotations

import pytest

from urbanflow.evaluation.report import duration_label


@pytest.mark.parametrize(
    ("minutes", "label"),
    [
        (15, "15 min"),
        (60, "1 h"),
        (90, "90 min"),
        (360, "6 h"),
        (1440, "1 d"),
        (2160, "36 h"),
        (10080, "7 d"),
        (2.5, "2.5 min"),
    ],
)
def test_duration_label_uses_the_largest_whole_unit(minutes: float, label: str) -> None:
    assert duration_label(minutes) == label
