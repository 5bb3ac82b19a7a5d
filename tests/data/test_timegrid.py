"""Frequencies, step inference, the regular grid and time zones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from urbanflow.data.timegrid import (
    check_timezone,
    fit_grid,
    frequency_alias,
    infer_step,
    parse_frequency,
    parse_local_time,
    parse_timestamps,
)
from urbanflow.errors import DataError

MINUTE = pd.Timedelta("1min").value


def minutes(*values: int) -> np.ndarray:
    """UTC ns of 2024-01-01 00:00 plus the given minutes."""
    start = pd.Timestamp("2024-01-01", tz="UTC").value
    return start + MINUTE * np.array(values, dtype=np.int64)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5min", "5min"),
        ("15min", "15min"),
        ("1h", "1h"),
        ("2h", "2h"),
        ("30s", "30s"),
        ("1D", "1D"),
        (" 5min ", "5min"),
        ("PT5M", "5min"),
        ("pt15m", "15min"),
        ("PT1H", "1h"),
        ("PT1H30M", "90min"),
        ("PT30S", "30s"),
        ("P1D", "1D"),
        ("P1DT2H", "26h"),
    ],
)
def test_parse_frequency(text, expected):
    assert parse_frequency(text) == pd.Timedelta(expected)


@pytest.mark.parametrize("text", ["often", "", "5 minutes", "5 min later", "P1M", "P1MT5M", "1W"])
def test_parse_frequency_refuses_what_it_cannot_read(text):
    with pytest.raises(DataError, match=rf"^frequency '{text}' is not understood; use .*'PT5M'"):
        parse_frequency(text)


@pytest.mark.parametrize("text", ["0min", "-5min", "PT0S"])
def test_parse_frequency_must_be_positive(text):
    with pytest.raises(DataError, match="must be a positive duration"):
        parse_frequency(text)


@pytest.mark.parametrize(
    ("step", "alias"),
    [("5min", "5min"), ("15min", "15min"), ("1h", "1h"), ("90min", "90min"), ("30s", "30s")],
)
def test_frequency_alias_round_trips(step, alias):
    assert frequency_alias(pd.Timedelta(step)) == alias
    assert parse_frequency(alias) == pd.Timedelta(step)


def test_infer_step_is_the_most_common_gap_not_the_smallest():
    assert infer_step(minutes(0, 5, 15, 25, 35)) == pd.Timedelta("10min")
    assert infer_step(minutes(0, 15, 30, 45, 100, 115)) == pd.Timedelta("15min")


def test_infer_step_ties_go_to_the_smallest_gap():
    assert infer_step(minutes(0, 5, 15)) == pd.Timedelta("5min")


def test_infer_step_ignores_order_and_repeated_times():
    times = minutes(20, 0, 10, 40, 10, 10, 5, 0, 30)  # distinct gaps: 5, 5, 10, 10, 10
    assert infer_step(times) == pd.Timedelta("10min")


def test_infer_step_needs_two_distinct_times():
    with pytest.raises(DataError, match="only one distinct timestamp"):
        infer_step(minutes(5, 5, 5))


def test_fit_grid_on_a_regular_series_with_a_gap():
    times = minutes(10, 0, 5, 25, 30)
    grid, first_off = fit_grid(times, None)
    assert first_off is None
    assert grid.start == times.min()
    assert grid.step == 5 * MINUTE
    assert grid.length == 7
    np.testing.assert_array_equal(grid.positions(times), [2, 0, 1, 5, 6])
    index = grid.index("Europe/Paris")
    assert index[0] == pd.Timestamp("2024-01-01 01:00", tz="Europe/Paris")
    assert (np.diff(index.asi8) == 5 * MINUTE).all()


def test_fit_grid_with_a_given_step_leaves_room_for_missing_steps():
    grid, first_off = fit_grid(minutes(0, 10, 20), pd.Timedelta("5min"))
    assert first_off is None
    assert grid.length == 5


def test_fit_grid_names_the_first_off_grid_row_in_input_order():
    times = minutes(0, 5, 10, 13, 15, 20, 22, 25)
    _, first_off = fit_grid(times, None)
    assert first_off == 3
    _, first_off = fit_grid(times[::-1], None)  # in file order, 22 comes first
    assert first_off == 1


def test_fit_grid_off_the_given_step():
    _, first_off = fit_grid(minutes(0, 15, 30, 40, 45), pd.Timedelta("15min"))
    assert first_off == 3


def test_fit_grid_a_stray_first_time_is_the_row_named():
    times = minutes(2, 5, 10, 15, 20)
    grid, first_off = fit_grid(times, None)
    assert first_off == 0
    assert grid.start == times[1]


def test_parse_timestamps_with_offsets():
    texts = pd.Series(["2024-01-01T01:00:00+01:00", "2024-01-01T00:05Z", "2024-01-01T00:10+0000"])
    parsed = parse_timestamps(texts, np.zeros(3, np.int64), "America/Los_Angeles")
    assert not parsed.invalid.any()
    np.testing.assert_array_equal(parsed.utc_ns, minutes(0, 5, 10))


def test_parse_timestamps_second_occurrence_of_the_autumn_hour_is_standard_time():
    texts = pd.Series(["2024-11-03 01:30", "2024-11-03 01:30"])
    parsed = parse_timestamps(texts, np.array([0, 1]), "America/Los_Angeles")
    daylight, standard = (pd.Timestamp(t, tz="UTC") for t in parsed.utc_ns)
    assert daylight == pd.Timestamp("2024-11-03 08:30", tz="UTC")  # 01:30 PDT
    assert standard == pd.Timestamp("2024-11-03 09:30", tz="UTC")  # 01:30 PST


def test_parse_timestamps_flags_times_the_zone_skips_and_text_it_cannot_read():
    skipped = parse_timestamps(
        pd.Series(["2024-03-10 01:30", "2024-03-10 02:30"]), np.zeros(2), "America/Los_Angeles"
    )
    assert skipped.problem == "nonexistent"
    np.testing.assert_array_equal(skipped.invalid, [False, True])
    unreadable = parse_timestamps(pd.Series(["2024-01-01 00:00", "soon"]), np.zeros(2), "UTC")
    assert unreadable.problem == "unparseable"
    np.testing.assert_array_equal(unreadable.invalid, [False, True])


def test_parse_timestamps_refuses_mixed_offsets():
    texts = pd.Series(["2024-01-01T00:00+01:00", "2024-01-01 00:05"])
    with pytest.raises(DataError, match=r"first without: '2024-01-01 00:05'"):
        parse_timestamps(texts, np.zeros(2), "UTC")


LA = "America/Los_Angeles"


def test_parse_local_time_naive_text_is_the_zone_and_an_offset_is_kept() -> None:
    naive = parse_local_time(" 2012-03-07 08:00 ", LA, "start")
    assert naive == pd.Timestamp("2012-03-07 16:00", tz="UTC") and str(naive.tz) == LA
    given = parse_local_time("2012-03-07T08:00+00:00", LA, "start")
    assert given == pd.Timestamp("2012-03-07 08:00", tz="UTC") and str(given.tz) == LA
    stamp = pd.Timestamp("2012-03-07 08:00")
    assert parse_local_time(stamp, LA, "issue time") == stamp.tz_localize(LA)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("yesterday-ish", r"^end 'yesterday-ish' is not a date and time \(cannot be parsed\); "),
        ("", r"^end '' is not a date and time"),
        ("2012-13-01", r"^end '2012-13-01' is not a date and time"),
        ("2012-03-11 02:30", r"^end '2012-03-11 02:30' does not exist or is ambiguous in "),
        ("2012-11-04 01:30", r"does not exist or is ambiguous in America/Los_Angeles"),
        ("2012-03-01T00:05:00+99:00", r"is not a date and time"),
    ],
)
def test_parse_local_time_refuses_in_one_line(text: str, message: str) -> None:
    with pytest.raises(DataError, match=message):
        parse_local_time(text, LA, "end")


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "America", "../x", "/etc/passwd"])
def test_check_timezone_refuses_unknown_zones(zone: str) -> None:
    with pytest.raises(DataError, match=r"^timezone .* is not known; use an IANA name"):
        check_timezone(zone)
    with pytest.raises(DataError, match=r"is not known"):
        parse_local_time("2012-03-01", zone, "start")
