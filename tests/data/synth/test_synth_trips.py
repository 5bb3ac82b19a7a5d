"""`urbanflow datasets synth trips`: seeded, and shaped like a city's trips.

The properties are checked on the generated table (start times, coordinates), not on the
generator's own rates, so a wrong profile, a broken gravity draw or a lost rain factor fails.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from tests.cli_run import run

from urbanflow.data.synth.base import KM_PER_DEGREE_LATITUDE
from urbanflow.data.synth.trips import (
    TRIP_COLUMNS,
    SyntheticTrips,
    TripCityParameters,
    destination_probabilities,
    generate_trips,
    sample_destinations,
    write_trips,
)
from urbanflow.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def default_trips() -> SyntheticTrips:
    return generate_trips(TripCityParameters())


@pytest.fixture(scope="module")
def long_run() -> SyntheticTrips:
    """20 weeks at 1,000 trips a day: enough rain weekdays to see the rain factor."""
    return generate_trips(TripCityParameters(zones=20, days=140, trips_per_day=1000, seed=3))


def day_index(result: SyntheticTrips) -> np.ndarray:
    return np.searchsorted(result.days, result.trips["start_time"], side="right") - 1


def zone_hour_counts(result: SyntheticTrips) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """``[hours zones]`` trips starting in each zone and hour, and the hours."""
    hours = pd.date_range(result.days[0], result.days[-1], freq="h", inclusive="left")
    step = np.searchsorted(hours, result.trips["start_time"], side="right") - 1
    counts = np.zeros((len(hours), len(result.city.x_km)), dtype=np.int64)
    np.add.at(counts, (step, result.origin), 1)
    return counts, hours


def test_the_same_seed_gives_the_same_trips_and_another_seed_others(default_trips):
    again = generate_trips(TripCityParameters())
    pd.testing.assert_frame_equal(default_trips.trips, again.trips)
    other = generate_trips(TripCityParameters(seed=1))
    assert len(other.trips) != len(default_trips.trips) or not other.trips.equals(
        default_trips.trips
    )
    assert not np.allclose(other.city.x_km, default_trips.city.x_km)


def test_the_table_is_what_from_trips_reads(default_trips):
    trips = default_trips.trips
    assert tuple(trips.columns) == TRIP_COLUMNS
    assert str(trips["start_time"].dt.tz) == "Europe/Berlin"
    assert trips["start_time"].is_monotonic_increasing
    assert (trips["end_time"] > trips["start_time"]).all()
    first, last = default_trips.days[0], default_trips.days[-1]
    assert trips["start_time"].min() >= first and trips["start_time"].max() < last
    assert first == pd.Timestamp("2026-03-02", tz="Europe/Berlin") and first.day_of_week == 0
    # inside the fictional city: within ~12 km of the centre
    assert trips["start_lat"].between(50.9, 51.2).all()
    assert trips["start_lon"].between(10.2, 10.7).all()


def test_the_end_time_is_access_plus_the_detoured_distance_at_the_speed(default_trips):
    parameters = TripCityParameters()
    trips = default_trips.trips
    cos = np.cos(np.radians(parameters.centre[0]))
    north = (trips["end_lat"] - trips["start_lat"]) * KM_PER_DEGREE_LATITUDE
    east = (trips["end_lon"] - trips["start_lon"]) * KM_PER_DEGREE_LATITUDE * cos
    km = parameters.detour_factor * np.hypot(north, east)
    expected = parameters.access_minutes * 60 + 3600 * km / parameters.speed_kmh
    took = (trips["end_time"] - trips["start_time"]).dt.total_seconds()
    assert np.abs(took - expected).max() < 1.0  # seconds: times and coordinates are rounded


def test_weekdays_peak_at_the_commute_hours_and_weekends_are_lower_and_later(default_trips):
    start = default_trips.trips["start_time"]
    weekday = (start.dt.day_of_week < 5).to_numpy()
    by_hour = np.bincount(start.dt.hour[weekday], minlength=24) / weekday.sum()
    assert 7 <= np.argmax(by_hour[:12]) <= 8  # morning peak, home to work
    assert 16 <= 12 + np.argmax(by_hour[12:]) <= 18  # evening peak, work to home
    assert by_hour[7] + by_hour[8] > 2.5 * (by_hour[12] + by_hour[13])  # a peak, not a plateau
    assert by_hour[1:5].sum() < 0.01  # the small hours are nearly empty
    weekend_by_hour = np.bincount(start.dt.hour[~weekday], minlength=24) / (~weekday).sum()
    assert weekend_by_hour[7] + weekend_by_hour[8] < 0.3 * (by_hour[7] + by_hour[8])
    # later: the day gets going hours later, and more of it happens after 21:00
    hour = start.dt.hour.to_numpy()
    assert np.quantile(hour[~weekday], 0.25) >= np.quantile(hour[weekday], 0.25) + 3
    assert weekend_by_hour[21:].sum() > 1.5 * by_hour[21:].sum()
    per_day = np.bincount(day_index(default_trips), minlength=28)
    is_weekend = default_trips.days[:-1].day_of_week >= 5
    assert per_day[is_weekend].mean() < 0.75 * per_day[~is_weekend].mean()


def test_rain_days_have_about_a_fifth_fewer_trips(long_run):
    per_day = np.bincount(day_index(long_run), minlength=140)
    weekday = long_run.days[:-1].day_of_week < 5
    rain = long_run.rain
    assert 0.08 < rain.mean() < 0.25 and (rain & weekday).sum() >= 8
    ratio = per_day[weekday & rain].mean() / per_day[weekday & ~rain].mean()
    assert 0.72 < ratio < 0.88  # rain_factor 0.8


def test_most_zone_hours_at_night_have_no_trip(default_trips):
    """The documented band: with the defaults (60 zones, 3,000 trips on a dry weekday),
    35–60 % of all zone-hours and over 85 % of those from 00:00 to 04:59 have no trip
    (measured: 47 % and 94 %)."""
    counts, hours = zone_hour_counts(default_trips)
    assert 0.35 < (counts == 0).mean() < 0.60
    assert (counts[hours.hour < 5] == 0).mean() > 0.85
    assert (counts[(hours.hour >= 7) & (hours.hour <= 18)] == 0).mean() < 0.45


def test_trips_get_shorter_when_the_distance_scale_shrinks():
    def mean_distance(scale_km: float) -> float:
        result = generate_trips(TripCityParameters(distance_scale_km=scale_km, days=7))
        return float(result.city.distance_km[result.origin, result.destination].mean())

    short, medium, long = mean_distance(1.5), mean_distance(3.0), mean_distance(6.0)
    assert short < 0.8 * medium and medium < 0.9 * long


def test_near_zones_are_likelier_destinations_at_equal_attraction():
    distance = np.array([[0.5, 1.0, 2.0, 4.0], [1.0, 0.5, 1.0, 3.0]])
    probabilities = destination_probabilities(distance, np.ones(4), scale_km=2.0)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    assert np.all(np.diff(probabilities[0]) < 0)  # farther, less likely
    assert probabilities[1, 0] == pytest.approx(probabilities[1, 2])  # equal distance, equal
    # doubling a zone's attraction doubles its odds against the others
    doubled = destination_probabilities(distance, np.array([1.0, 1.0, 1.0, 2.0]), 2.0)
    odds = doubled[0, 3] / doubled[0, 2], probabilities[0, 3] / probabilities[0, 2]
    assert odds[0] == pytest.approx(2 * odds[1])


def test_destinations_are_drawn_with_the_gravity_probabilities():
    rng = np.random.default_rng(0)
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [1 / 3, 1 / 3, 1 / 3]])
    origin = rng.integers(0, 3, 90_000)
    destination = sample_destinations(origin, probabilities, rng)
    for zone in range(3):
        drawn = np.bincount(destination[origin == zone], minlength=3) / (origin == zone).sum()
        assert np.abs(drawn - probabilities[zone]).max() < 0.01


def test_no_trip_starts_in_the_hour_the_clocks_skip(default_trips):
    start = default_trips.trips["start_time"]
    change_day = start[start.dt.date == pd.Timestamp("2026-03-29").date()]
    assert len(change_day) > 0 and not (change_day.dt.hour == 2).any()
    assert (change_day[change_day.dt.hour >= 3].dt.strftime("%z") == "+0200").all()


def test_parquet_keeps_the_times_and_says_synthetic(tmp_path):
    parameters = TripCityParameters(zones=10, days=2, trips_per_day=200, seed=4)
    path = tmp_path / "trips.parquet"
    result = write_trips(path, parameters)
    back = pd.read_parquet(path)
    pd.testing.assert_frame_equal(back, generate_trips(parameters).trips)
    assert result.rows == len(back)
    label = pq.read_schema(path).metadata[b"urbanflow.source"].decode()
    assert label == "synthetic, generated by urbanflow datasets synth trips --seed 4"


def test_csv_writes_local_times_with_their_offset(tmp_path):
    parameters = TripCityParameters(zones=10, days=2, trips_per_day=200)
    write_trips(tmp_path / "trips.csv", parameters)
    text = pd.read_csv(tmp_path / "trips.csv", dtype=str)
    assert tuple(text.columns) == TRIP_COLUMNS
    assert text["start_time"].str.fullmatch(r"2026-03-0[23]T\d\d:\d\d:\d\d\+01:00").all()
    expected = generate_trips(parameters).trips
    parsed = pd.to_datetime(text["start_time"], utc=True)
    assert (parsed == expected["start_time"].dt.tz_convert("UTC")).all()


def test_an_existing_file_needs_force(tmp_path):
    path = tmp_path / "trips.parquet"
    path.write_text("old")
    with pytest.raises(ConfigError, match="exists; pass --force"):
        write_trips(path, TripCityParameters(days=1))
    write_trips(path, TripCityParameters(days=1), force=True)
    assert len(pd.read_parquet(path)) > 0


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"zones": 1}, ConfigError, "--zones is 1; give a number ≥ 2"),
        ({"days": 0}, ConfigError, "--days is 0"),
        ({"trips_per_day": -5}, ConfigError, "--trips-per-day is -5"),
        ({"rain_share": 1.5}, ConfigError, "rain_share is 1.5"),
    ],
)
def test_bad_parameters_are_refused(options, error, message):
    with pytest.raises(error, match=message):
        TripCityParameters(**options)


def test_an_unknown_timezone_or_start_is_a_data_error():
    with pytest.raises(DataError, match="timezone 'Mars/Olympus' is not known"):
        generate_trips(TripCityParameters(timezone="Mars/Olympus"))
    with pytest.raises(DataError, match="--start '2026-02-30'"):
        generate_trips(TripCityParameters(start="2026-02-30"))


def test_cli_writes_the_table_and_prints_one_line(tmp_path, capsys):
    out = tmp_path / "nested" / "trips.csv"
    args = ["datasets", "synth", "trips", "--out", str(out), "--zones", "12", "--days", "3"]
    code, printed, _ = run([*args, "--trips-per-day", "300", "--seed", "7"], capsys)
    assert code in (0, None)
    assert printed.strip().count("\n") == 0
    assert "synthetic trips, 12 zones, 3 days from 2026-03-02, seed 7" in printed
    parameters = TripCityParameters(zones=12, days=3, trips_per_day=300, seed=7)
    assert len(pd.read_csv(out)) == len(generate_trips(parameters).trips)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--zones", "-3"], "--zones is -3"),
        (["--days", "0"], "--days is 0"),
        (["--timezone", "Mars/Olympus"], "timezone 'Mars/Olympus' is not known"),
        (["--start", "tomorrow-ish"], "--start 'tomorrow-ish'"),
    ],
)
def test_cli_bad_options_are_one_line_errors(tmp_path, capsys, options, message):
    args = ["datasets", "synth", "trips", "--out", str(tmp_path / "t.parquet"), *options]
    code, _, err = run(args, capsys)
    assert code == 2
    assert message in err and err.strip().count("\n") == 0
    assert not (tmp_path / "t.parquet").exists()
