"""`urbanflow datasets synth wards`: seeded ward occupancy that respects the beds.

Checked on the simulated hours (arrivals, admissions, occupancy), so a wrong profile, a lost
discharge or an overfull ward fails.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from urbanflow.cli import main
from urbanflow.data.catalog import load_dataset
from urbanflow.data.synth import SYNTH_KINDS
from urbanflow.data.synth.wards import (
    ADMISSION_HOURLY,
    WardParameters,
    WardSimulation,
    simulate_wards,
    write_wards,
)
from urbanflow.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def default_wards() -> WardSimulation:
    return simulate_wards(WardParameters())


@pytest.fixture(scope="module")
def year() -> WardSimulation:
    """Eight wards for 52 weeks: long enough to compare averages with the model's."""
    return simulate_wards(WardParameters(wards=8, hospitals=2, days=364, seed=1))


def test_the_same_seed_gives_the_same_wards_and_another_seed_others(default_wards):
    again = simulate_wards(WardParameters())
    np.testing.assert_array_equal(again.occupancy, default_wards.occupancy)
    np.testing.assert_array_equal(again.capacity, default_wards.capacity)
    other = simulate_wards(WardParameters(seed=1))
    assert not np.array_equal(other.occupancy, default_wards.occupancy)


def test_occupancy_is_whole_beds_within_capacity(default_wards, year):
    for simulation in (default_wards, year):
        occupancy = simulation.occupancy
        assert np.issubdtype(occupancy.dtype, np.integer)
        assert occupancy.min() >= 0
        assert (occupancy <= simulation.capacity[None, :]).all()
    capacity = default_wards.capacity
    assert capacity.min() >= 12 and capacity.max() <= 40
    assert 0.6 < default_wards.occupancy.mean() / capacity.mean() < 0.9  # mostly full


def test_the_warm_up_starts_from_a_settled_ward(default_wards):
    """The first day looks like the rest, not like wards filling up from empty."""
    settled = default_wards.occupancy
    assert 0.8 < settled[:24].mean() / settled[24:].mean() < 1.2
    cold = simulate_wards(WardParameters(warmup_days=0)).occupancy
    assert cold[0].sum() < 0.1 * settled[0].sum() and cold[:24].mean() < 0.5 * settled[24:].mean()


def test_full_wards_divert_arrivals_instead_of_overfilling():
    crowded = simulate_wards(WardParameters(wards=3, hospitals=1, target_occupancy=1.0, seed=2))
    full = crowded.occupancy == crowded.capacity[None, :]
    assert full.any() and crowded.diverted.sum() > 0
    assert (crowded.arrivals == crowded.admitted + crowded.diverted).all()
    assert (crowded.diverted[~full] == 0).all()  # only a full ward turns patients away
    calm = simulate_wards(WardParameters(wards=3, hospitals=1, target_occupancy=0.3, seed=2))
    assert calm.diverted.sum() == 0


def test_admissions_by_hour_and_weekday_follow_the_profile(year):
    arrivals = year.arrivals.sum(axis=1)
    hour = year.timestamps.hour
    share = np.bincount(hour, weights=arrivals, minlength=24) / arrivals.sum()
    assert np.abs(share - ADMISSION_HOURLY).max() < 0.015
    assert 9 <= np.argmax(share) <= 12  # late-morning admissions
    assert share[:6].sum() < 0.1 and share[9:13].sum() > 0.3
    weekend = year.timestamps.day_of_week >= 5
    ratio = arrivals[weekend].mean() / arrivals[~weekend].mean()
    assert 0.55 < ratio < 0.7  # 0.7 / mean(1.2, 1.15, 1.1, 1.1, 1.05) = 0.625


def test_stays_are_log_normal_around_the_ward_median(year):
    expected_mean = year.median_stay_hours * np.exp(WardParameters().stay_sigma ** 2 / 2)
    count = np.bincount(year.stay_ward)
    mean = np.bincount(year.stay_ward, weights=year.stays_hours) / count
    assert np.allclose(mean, expected_mean, rtol=0.1)  # each ward (a few thousand stays)
    relative = year.stays_hours / expected_mean[year.stay_ward]
    assert relative.mean() == pytest.approx(1.0, abs=0.03)  # all wards (17,000 stays)
    median = np.array([np.median(year.stays_hours[year.stay_ward == w]) for w in range(8)])
    assert np.allclose(median, year.median_stay_hours, rtol=0.07)
    # the ward medians spread around 72 h (three days): factor exp(N(0, 0.3)), within 3 sd
    log_factor = np.log(year.median_stay_hours / 72.0)
    assert abs(log_factor.mean()) < 0.3 and np.abs(log_factor).max() < 0.9
    assert log_factor.std() > 0.1  # each ward its own scale


def test_occupancy_obeys_littles_law(year):
    """Patients present = admissions per hour × hours each stays (stays end on the hour)."""
    count = np.bincount(year.stay_ward)
    held = np.bincount(year.stay_ward, weights=np.maximum(1, np.ceil(year.stays_hours))) / count
    expected = year.admitted.mean(axis=0) * held
    assert np.allclose(year.occupancy.mean(axis=0), expected, rtol=0.06)


def test_the_folder_loads_as_occupancy_with_capacities(tmp_path, default_wards):
    result = SYNTH_KINDS["wards"](tmp_path / "wards", WardParameters())
    dataset = load_dataset(tmp_path / "wards")
    assert dataset.kind == "occupancy" and dataset.kind_source == "declared"
    np.testing.assert_array_equal(dataset.sensors.capacity, default_wards.capacity)
    np.testing.assert_array_equal(dataset.readings[..., 0], default_wards.occupancy)
    assert dataset.sensors.ids == default_wards.ward_ids
    assert dataset.metadata.frequency == "1h" and dataset.metadata.unit == "beds"
    assert dataset.metadata.quantity == "occupied beds"
    assert str(dataset.metadata.timezone) == "Europe/Berlin"
    assert dataset.metadata.source.startswith("synthetic, generated by urbanflow datasets synth")
    assert "synthetic" in dataset.metadata.licence
    # 28 local days; the spring change (29 March 2026) has 23 hours
    assert dataset.num_steps == result.rows == 28 * 24 - 1
    assert dataset.timestamps[0] == pd.Timestamp("2026-03-02 00:00", tz="Europe/Berlin")
    # wards of one hospital a few metres apart, hospitals kilometres apart
    sensors = pd.read_csv(tmp_path / "wards" / "sensors.csv")
    hospital = sensors["name"].str.split(",").str[0]
    spread = sensors.groupby(hospital)[["latitude", "longitude"]].std().max().max()
    assert spread < 0.001 and hospital.nunique() == 3


def test_a_non_empty_folder_needs_force(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="is not empty; pass --force"):
        write_wards(tmp_path, WardParameters(days=1))
    write_wards(tmp_path, WardParameters(days=1), force=True)
    assert (tmp_path / "notes.txt").exists() and (tmp_path / "readings.parquet").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"wards": 0}, "--wards is 0"),
        ({"days": -2}, "--days is -2"),
        ({"wards": 2, "hospitals": 3}, "--hospitals 3 is more than --wards 2"),
        ({"min_beds": 20, "max_beds": 10}, "max_beds is 10"),
    ],
)
def test_bad_parameters_are_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        WardParameters(**options)


def test_an_unknown_timezone_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="timezone 'PST' is not known"):
        write_wards(tmp_path / "w", WardParameters(timezone="PST"))
    assert not (tmp_path / "w").exists()


def test_cli_writes_the_folder_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "wards"
    args = ["datasets", "synth", "wards", "--out", str(out), "--wards", "4", "--days", "2"]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--hospitals", "2", "--seed", "5"])
    printed = capsys.readouterr().out
    assert exit_info.value.code in (0, None)
    assert printed.strip().count("\n") == 0 and "4 wards in 2 hospitals" in printed
    assert load_dataset(out).num_sensors == 4
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "is not empty; pass --force" in err
    assert err.strip().count("\n") == 0
