"""Sample windows: the index arithmetic of inputs ``[t-L, t)`` and targets ``[t, t+H)``."""

from __future__ import annotations

import numpy as np
import pytest

from urbanflow.data.windows import (
    batches,
    input_span,
    input_steps,
    input_windows,
    sample_times,
    target_steps,
    target_windows,
)
from urbanflow.errors import ConfigError


def test_input_and_target_steps() -> None:
    times = np.array([3, 7])
    np.testing.assert_array_equal(input_steps(times, 3), [[0, 1, 2], [4, 5, 6]])
    np.testing.assert_array_equal(target_steps(times, 2), [[3, 4], [7, 8]])
    assert input_span(times, 3) == (0, 7)


def test_windows_gather_those_steps() -> None:
    readings = np.arange(10 * 2 * 2, dtype=np.float32).reshape(10, 2, 2)
    times = np.array([3, 7])
    np.testing.assert_array_equal(
        input_windows(readings, times, 3), readings[[[0, 1, 2], [4, 5, 6]]]
    )
    np.testing.assert_array_equal(
        target_windows(readings, times, 2), readings[[[3, 4], [7, 8]], :, 0]
    )


def test_sample_times_leave_room_for_inputs_and_targets() -> None:
    np.testing.assert_array_equal(sample_times(10, 3, 2), np.arange(3, 9))
    with pytest.raises(ConfigError, match="too few"):
        sample_times(4, 3, 2)


def test_batches_cover_every_time_once_in_order() -> None:
    parts = list(batches(np.arange(7), 3))
    assert [p.tolist() for p in parts] == [[0, 1, 2], [3, 4, 5], [6]]


def test_hold_out_keeps_a_gap_of_h_between_the_parts() -> None:
    from urbanflow.data.windows import hold_out

    times = np.arange(12, 112)  # 100 samples
    fitting, held = hold_out(times, horizon=3)
    assert held.tolist() == list(range(102, 112))  # the last 10 %
    assert fitting[-1] + 3 < held[0]  # the last fitting target comes before the first held
    assert fitting.tolist() == list(range(12, 99))
    few_fitting, few_held = hold_out(np.arange(12, 15), horizon=5)
    assert few_fitting.size == 0 and few_held.tolist() == [14]
