"""Conformal intervals: calibration, the online update, and no residual before its reading."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from urbanflow.errors import ConfigError, DataError
from urbanflow.models.conformal import (
    OnlineConformal,
    calibrate,
    calibrate_batches,
    distribution_sd,
    interval_columns,
    parse_levels,
    probability_below,
    replay_batch,
    replay_intervals,
    sorted_quantile,
)


def noisy_series(steps: int = 400, sensors: int = 6, seed: int = 0):
    """Readings whose noise grows with the sensor index, and forecasts of the clean signal."""
    rng = np.random.default_rng(seed)
    clean = 50 + 10 * np.sin(np.arange(steps) / 20)[:, None] + np.zeros(sensors)
    noise = rng.normal(0, 1, (steps, sensors)) * (1 + np.arange(sensors))
    return clean + noise, clean


def forecasts_of(clean: np.ndarray, times: np.ndarray, horizon: int) -> np.ndarray:
    """``[s h n]`` forecasts equal to the clean signal at each target."""
    index = np.minimum(times[:, None] + np.arange(horizon), clean.shape[0] - 1)
    return clean[index]


def test_levels_are_parsed_and_named():
    assert parse_levels("95,80") == (80.0, 95.0)
    assert parse_levels("none") == ()
    assert interval_columns((80, 97.5)) == ["lower_80", "upper_80", "lower_97_5", "upper_97_5"]
    for bad in ("0,95", "abc", "100"):
        with pytest.raises(ConfigError, match="levels"):
            parse_levels(bad)


def test_sorted_quantile_interpolates_between_order_statistics():
    scores = np.array([[0.0, 1.0, 2.0, 3.0, 4.0]])
    assert sorted_quantile(scores, np.array([0.5]))[0] == 2.0
    assert sorted_quantile(scores, np.array([0.125]))[0] == 0.5
    assert sorted_quantile(scores, np.array([1.5]))[0] == 4.0  # clipped


def test_calibration_uses_only_targets_before_the_cutoff():
    readings, clean = noisy_series()
    times = np.arange(12, 200)
    forecasts = forecasts_of(clean, times, 3)
    calibration = calibrate(forecasts, times, readings, cutoff=150)
    spoiled = readings.copy()
    spoiled[150:] = 1e6  # readings at or after the cutoff must not matter
    again = calibrate(forecasts, times, spoiled, cutoff=150)
    np.testing.assert_array_equal(calibration.scores, again.scores)
    np.testing.assert_array_equal(calibration.scale, again.scale)
    # noisier sensors get larger scales
    assert np.all(np.diff(calibration.scale[0]) > 0)


def test_a_sensor_with_larger_errors_gets_wider_intervals_and_coverage_holds():
    readings, clean = noisy_series(steps=2000)
    validation = np.arange(12, 600)
    calibration = calibrate(forecasts_of(clean, validation, 3), validation, readings, 600)
    test = np.arange(600 - 2, 1990)
    lower, upper = replay_intervals(
        calibration, forecasts_of(clean, test, 3), test, readings, (90.0,)
    )
    width = (upper - lower)[test >= 600, 0]  # [s h n]
    assert np.all(np.diff(width.mean(axis=(0, 1))) > 0)
    targets = readings[np.minimum(test[:, None] + np.arange(3), 1999)][test >= 600]
    inside = (targets >= lower[test >= 600, 0]) & (targets <= upper[test >= 600, 0])
    assert 0.88 <= inside.mean() <= 0.92
    assert np.all(inside.mean(axis=(0, 1)) > 0.85)  # every sensor, not only the pool


def test_no_residual_is_used_before_its_reading_arrives():
    readings, clean = noisy_series()
    validation = np.arange(12, 150)
    calibration = calibrate(forecasts_of(clean, validation, 4), validation, readings, 150)
    times = np.arange(147, 390)
    forecasts = forecasts_of(clean, times, 4)
    lower, upper = replay_intervals(calibration, forecasts, times, readings, (80.0, 95.0))
    arrival = 250  # readings from this step on are replaced by garbage
    spoiled = readings.copy()
    spoiled[arrival:] = spoiled[arrival:] * 3 + 40
    lower2, upper2 = replay_intervals(calibration, forecasts, times, spoiled, (80.0, 95.0))
    known = times <= arrival  # sample t reads steps up to t - 1 only
    np.testing.assert_array_equal(lower[known], lower2[known])
    np.testing.assert_array_equal(upper[known], upper2[known])
    # ... and the reading at `arrival` is used as soon as it is known, by sample arrival + 1
    later = np.flatnonzero(times == arrival + 1)[0]
    assert not np.array_equal(upper[later], upper2[later])


def test_samples_before_the_cutoff_get_no_intervals():
    readings, clean = noisy_series()
    validation = np.arange(12, 150)
    calibration = calibrate(forecasts_of(clean, validation, 4), validation, readings, 150)
    times = np.arange(147, 160)
    lower, _ = replay_intervals(calibration, forecasts_of(clean, times, 4), times, readings, (90,))
    assert np.isnan(lower[times < 150]).all() and np.isfinite(lower[times >= 150]).all()


def test_the_online_update_widens_intervals_after_misses():
    readings, clean = noisy_series()
    validation = np.arange(12, 150)
    calibration = calibrate(forecasts_of(clean, validation, 1), validation, readings, 150)
    state = OnlineConformal(calibration, (90.0,))
    forecast = clean[150][None]
    before = np.diff(np.stack(state.issue(150, forecast)), axis=0)
    state.observe(150, clean[150] + 100)  # every reading far outside
    after = np.diff(np.stack(state.intervals(forecast)), axis=0)
    assert np.all(after > before)


def test_probability_below_follows_the_calibrated_distribution():
    readings, clean = noisy_series()
    validation = np.arange(12, 300)
    calibration = calibrate(forecasts_of(clean, validation, 1), validation, readings, 300)
    forecast = np.full((1, 6), 50.0)
    low = probability_below(calibration, calibration.scale, forecast, -1e9)
    high = probability_below(calibration, calibration.scale, forecast, 1e9)
    middle = probability_below(calibration, calibration.scale, forecast, 50.0)
    assert np.all(low == 0) and np.all(high == 1)
    assert np.all(np.abs(middle - 0.5) < 0.15)


def test_a_calibration_is_found_by_its_time_or_refused():
    import pandas as pd

    readings, clean = noisy_series()
    validation = np.arange(12, 150)
    stamps = pd.date_range("2024-01-01", periods=400, freq="5min", tz="UTC")
    calibration = calibrate(
        forecasts_of(clean, validation, 2), validation, readings, 150, stamps[150].isoformat()
    )
    assert calibration.rebased(stamps[100:]).cutoff == 50
    with pytest.raises(DataError, match="cutoff"):
        calibration.rebased(stamps[200:])


def test_intervals_of_counts_are_whole_numbers_never_below_zero():
    rng = np.random.default_rng(2)
    mean = 2 + 1.5 * np.sin(np.arange(400) / 20)[:, None] + np.zeros(4)
    readings = rng.poisson(mean).astype(float)
    validation = np.arange(12, 150)
    counts = calibrate(forecasts_of(mean, validation, 2), validation, readings, 150, counts=True)
    assert counts.counts
    forecast = np.array([[0.4, 0.8, 1.6, 5.2], [0.3, 1.0, 2.5, 6.0]])  # [h n], some near 0
    lower, upper = OnlineConformal(counts, (80.0, 95.0)).intervals(forecast)
    low, high = OnlineConformal(replace(counts, counts=False), (80.0, 95.0)).intervals(forecast)
    assert (low < 0).any()  # the unrounded interval reaches below 0 ...
    assert (lower >= 0).all()  # ... the interval of counts never does
    np.testing.assert_array_equal(lower, np.round(lower))
    np.testing.assert_array_equal(upper, np.round(upper))
    # each bound is the nearest whole number to the unrounded one (above 0)
    assert (np.abs(lower - np.maximum(low, 0)) <= 0.5).all()
    assert (np.abs(upper - np.maximum(high, lower)) <= 0.5).all()
    assert (upper >= lower).all()
    # replayed over the test part, every bound stays a whole number ≥ 0
    times = np.arange(150, 390)
    lower, upper = replay_intervals(counts, forecasts_of(mean, times, 2), times, readings, (90.0,))
    issued = times >= 150
    assert (lower[issued] >= 0).all()
    np.testing.assert_array_equal(upper[issued], np.round(upper[issued]))


def test_distribution_sd_of_each_family_by_hand():
    mean = np.array([[0.0, 1.0, 4.0]])
    np.testing.assert_allclose(distribution_sd("none", mean), 1.0)
    np.testing.assert_allclose(distribution_sd("poisson", mean), np.sqrt([[0.25, 1.25, 4.25]]))
    alpha = np.array([0.5, 0.5, 2.0])
    np.testing.assert_allclose(
        distribution_sd("negative-binomial", mean, alpha),
        np.sqrt([[0.25, 1 + 0.5 + 0.25, 4 + 2.0 * 16 + 0.25]]),
    )
    np.testing.assert_allclose(distribution_sd("tweedie", mean), np.sqrt(mean**1.5 + 0.25))
    with pytest.raises(ConfigError, match="dispersion"):
        distribution_sd("negative-binomial", mean)
    with pytest.raises(ConfigError, match="unknown"):
        calibrate(np.zeros((2, 1, 1)), np.arange(2), np.zeros((4, 1)), 3, spread="gamma")


def test_a_poisson_spread_widens_intervals_with_the_forecast_mean():
    rng = np.random.default_rng(4)
    mean = 0.2 + 6 * (np.sin(np.arange(600) / 8) > 0)[:, None] + np.zeros(3)  # quiet and busy
    readings = rng.poisson(mean).astype(float)
    validation = np.arange(12, 400)
    forecasts = forecasts_of(mean, validation, 1)
    spread = calibrate(forecasts, validation, readings, 400, spread="poisson")
    flat = calibrate(forecasts, validation, readings, 400)
    assert spread.spread == "poisson" and flat.spread == "none"
    # the drift reference stays a mean absolute error in the data's unit
    by_hand = np.abs(readings[validation] - mean[validation]).mean(axis=0)  # h = 1
    np.testing.assert_allclose(spread.reference_mae[0], by_hand)
    assert flat.validation_mae is None  # without a spread the scale is that reference
    quiet, busy = np.array([[0.2, 0.2, 0.2]]), np.array([[6.2, 6.2, 6.2]])
    low_q, high_q = OnlineConformal(spread, (80.0,)).intervals(quiet)
    low_b, high_b = OnlineConformal(spread, (80.0,)).intervals(busy)
    assert ((high_b - low_b) > 2 * (high_q - low_q)).all()  # wide at peaks, narrow when quiet
    flat_q = OnlineConformal(flat, (80.0,)).intervals(quiet)
    flat_b = OnlineConformal(flat, (80.0,)).intervals(busy)
    np.testing.assert_allclose(flat_b[1] - flat_b[0], flat_q[1] - flat_q[0])  # same width
    # coverage on the later part holds at both quiet and busy steps
    times = np.arange(400, 590)
    lower, upper = replay_intervals(spread, forecasts_of(mean, times, 1), times, readings, (80.0,))
    y = readings[times][:, None, None, :]
    inside = (y >= lower) & (y <= upper)
    for busy_step in (True, False):
        chosen = (mean[times, 0] > 1) == busy_step
        assert inside[chosen].mean() > 0.7
    # the probability of exceeding a threshold follows the same spread
    for threshold in (8.0, 10.0):
        with_spread = probability_below(spread, spread.scale, busy, threshold)
        without = probability_below(flat, flat.scale, busy, threshold)
        assert (with_spread < without).all()  # a busy step's upper tail is wider


@pytest.mark.parametrize("spread", ["none", "poisson"])
def test_calibration_from_batches_equals_the_calibration_from_all_forecasts(spread):
    readings, clean = noisy_series(steps=600)
    readings[100:140, 2] = np.nan  # a gap: residuals unknown there
    times = np.arange(12, 300)
    forecasts = forecasts_of(clean, times, 4).astype(np.float32)
    whole = calibrate(forecasts, times, readings, cutoff=280, spread=spread)
    parts = [(times[i : i + 37], forecasts[i : i + 37]) for i in range(0, times.size, 37)]
    batched = calibrate_batches(parts[::-1], times.size, readings, 280, spread=spread)  # any order
    assert batched.scores.dtype == np.float32 and batched.scores.shape == whole.scores.shape
    np.testing.assert_allclose(batched.scale, whole.scale, rtol=1e-12)
    np.testing.assert_allclose(batched.scores, whole.scores, rtol=1e-6, atol=1e-6)
    if spread != "none":
        np.testing.assert_allclose(batched.validation_mae, whole.validation_mae, rtol=1e-6)


def test_calibration_from_no_batches_is_a_one_line_error():
    readings, _ = noisy_series()
    with pytest.raises(ConfigError, match="validation residuals"):
        calibrate_batches([], 0, readings, cutoff=150)


def test_intervals_replayed_batch_after_batch_equal_the_replay_of_all_samples():
    readings, clean = noisy_series(steps=900)
    validation = np.arange(12, 400)
    calibration = calibrate(forecasts_of(clean, validation, 3), validation, readings, 400)
    times = calibration.replay_times(12, 700)
    forecasts = forecasts_of(clean, times, 3)
    lower, upper = replay_intervals(calibration, forecasts, times, readings, (80.0, 95.0))
    state = OnlineConformal(calibration, (80.0, 95.0))
    parts = [
        replay_batch(state, forecasts[i : i + 50], times[i : i + 50], readings)
        for i in range(0, times.size, 50)
    ]
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), lower)
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), upper)
