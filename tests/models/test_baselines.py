"""Behaviour of each baseline, checked against values computed by hand on tiny series."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from urbanflow import CityDataset, SensorGraph
from urbanflow.data.windows import target_windows
from urbanflow.errors import ConfigError, UnknownNameError
from urbanflow.models import baselines
from urbanflow.models.baselines import (
    RIDGE_ALPHAS,
    HistoricalAverage,
    LastValue,
    Ridge,
    SeasonalNaive,
    accumulate_normal_equations,
    fill_windows,
)
from urbanflow.models.registry import MODELS, make_model, model_names

DatasetBuilder = Callable[..., CityDataset]  # the `make_dataset` fixture of conftest.py
nan = np.nan


# --- last value ---------------------------------------------------------------------------


def test_last_value_takes_latest_present_reading_else_training_mean(
    make_dataset: DatasetBuilder,
) -> None:
    values = np.array(
        [  # sensor 0, sensor 1, sensor 2 (never reports)
            [1, 10, nan],
            [2, 20, nan],
            [3, nan, nan],
            [4, nan, nan],
            [nan, nan, nan],
            [nan, nan, nan],
            [7, nan, nan],
            [8, nan, nan],
        ]
    )
    dataset = make_dataset(values)
    model = LastValue(input_len=3, horizon=2).fit(dataset.slice_steps(0, 4))
    # training means: 2.5, 15, and for the silent sensor the overall mean 40 / 6
    forecast = model.predict(dataset, np.array([4, 6, 7, 8]))
    expected = np.array(
        [
            [4, 20, 40 / 6],  # t=4: window 1..3
            [4, 15, 40 / 6],  # t=6: window 3..5, sensor 1 has none there
            [7, 15, 40 / 6],
            [8, 15, 40 / 6],  # t=8: a live forecast past the end
        ]
    )
    np.testing.assert_allclose(forecast, np.repeat(expected[:, None], 2, axis=1), rtol=1e-6)


def test_fill_windows_carries_forward_then_falls_back() -> None:
    windows = np.array([[[nan], [1.0], [nan], [3.0], [nan]]])  # [b l n]
    np.testing.assert_array_equal(fill_windows(windows, 9.0)[0, :, 0], [9, 1, 1, 3, 3])


# --- historical average -------------------------------------------------------------------


def test_historical_average_uses_weekday_profile_and_time_of_day_for_unseen_weekday(
    make_dataset: DatasetBuilder,
) -> None:
    # 12-hour steps from Monday 2024-01-01: two weeks, two slots a day, Sundays never reported
    steps = np.arange(28)
    weekday, slot, week = (steps // 2) % 7, steps % 2, steps // 14
    sensor0 = weekday * 10.0 + slot + 2 * week  # weekday mean: 10·weekday + slot + 1
    sensor1 = np.where(slot == 0, weekday + 100.0, nan)  # slot 1 never seen: sensor mean
    values = np.stack([sensor0, sensor1], axis=1)
    values[weekday == 6] = nan
    dataset = make_dataset(values, frequency="12h")
    model = HistoricalAverage(input_len=1, horizon=14).fit(dataset)

    forecast = model.predict(dataset, np.array([28]))[0]  # the whole third week, past the end
    target_weekday, target_slot = np.arange(14) // 2, np.arange(14) % 2
    expected0 = np.where(
        target_weekday < 6, 10.0 * target_weekday + target_slot + 1, 25.0 + target_slot + 1
    )
    np.testing.assert_allclose(forecast[:, 0], expected0)
    expected1 = np.where((target_slot == 0) & (target_weekday < 6), target_weekday + 100.0, 102.5)
    np.testing.assert_allclose(forecast[:, 1], expected1)
    assert model.parameter_count() == 7 * 2 * 2


def test_historical_average_uses_local_time_across_daylight_saving(
    make_dataset: DatasetBuilder,
) -> None:
    # two weeks of hourly readings in Los Angeles around the 2024-03-10 clock change; each
    # reading is the local hour, so the profile must be indexed by local wall-clock time
    stamps = pd.date_range("2024-03-04", periods=14 * 24 + 48, freq="1h", tz="America/Los_Angeles")
    values = np.asarray(stamps.hour, dtype=float)[:, None]
    dataset = make_dataset(values[: 14 * 24], start="2024-03-04", timezone="America/Los_Angeles")
    model = HistoricalAverage(input_len=1, horizon=48).fit(dataset)
    forecast = model.predict(dataset, np.array([14 * 24]))
    np.testing.assert_allclose(forecast[0, :, 0], values[14 * 24 :, 0])


def weekday_hours(start: str, days: int) -> np.ndarray:
    """``[t 1]`` hourly readings ``10·weekday + hour`` from ``start``."""
    stamps = pd.date_range(start, periods=days * 24, freq="1h", tz="UTC")
    return np.asarray(10 * stamps.day_of_week + stamps.hour, dtype=float)[:, None]


def test_historical_average_leaves_weekdays_out_with_less_than_two_of_each(
    make_dataset: DatasetBuilder,
) -> None:
    one_week = make_dataset(weekday_hours("2024-01-01", 7))
    model = HistoricalAverage(input_len=1, horizon=24).fit(one_week)
    assert not model.weekdays_
    forecast = model.predict(one_week, np.array([7 * 24]))[0, :, 0]  # the Monday after
    np.testing.assert_allclose(forecast, 30.0 + np.arange(24))  # the time-of-day profile
    two_weeks = make_dataset(weekday_hours("2024-01-01", 14))
    model = HistoricalAverage(input_len=1, horizon=24).fit(two_weeks)
    assert model.weekdays_
    np.testing.assert_allclose(
        model.predict(two_weeks, np.array([14 * 24]))[0, :, 0], np.arange(24)
    )


def test_historical_average_forecasts_a_holiday_as_a_sunday(
    make_dataset: DatasetBuilder,
) -> None:
    # two weeks from Monday 3 June 2024 (no holiday), then a week with Juneteenth (Wednesday)
    plain = make_dataset(weekday_hours("2024-06-03", 14), start="2024-06-03")
    dataset = replace(plain, metadata=replace(plain.metadata, country="US"))
    model = HistoricalAverage(input_len=1, horizon=7 * 24).fit(dataset)
    week = model.predict(dataset, np.array([14 * 24]))[0, :, 0].reshape(7, 24)
    np.testing.assert_allclose(week[2], 60.0 + np.arange(24))  # Juneteenth: Sunday's profile
    np.testing.assert_allclose(week[3], 30.0 + np.arange(24))  # Thursday as itself
    without = HistoricalAverage(input_len=1, horizon=7 * 24).fit(plain)  # no country
    np.testing.assert_allclose(
        without.predict(plain, np.array([14 * 24]))[0, 48:72, 0], week[2] - 40
    )


# --- seasonal naive -----------------------------------------------------------------------


@pytest.fixture
def six_hourly(make_dataset: DatasetBuilder) -> CityDataset:
    """6-hour steps (4 a day): sensor 0 reads its step index (gap at 5), sensor 1 only 3, 5."""
    sensor0 = np.arange(16.0)
    sensor0[5] = nan
    sensor1 = np.full(16, nan)
    sensor1[:2] = [3.0, 5.0]
    return make_dataset(np.stack([sensor0, sensor1], axis=1), frequency="6h")


def test_seasonal_naive_reads_one_day_back(six_hourly: CityDataset) -> None:
    model = SeasonalNaive(input_len=2, horizon=5).fit(six_hourly)
    forecast = model.predict(six_hourly, np.array([8, 2]))
    # t=8: sources 4..8; 5 is missing and 8 is not known yet -> latest in window (7)
    np.testing.assert_allclose(forecast[0, :, 0], [4, 7, 6, 7, 7])
    # sensor 1 has no reading a day back nor in its window -> training mean 4
    np.testing.assert_allclose(forecast[0, :, 1], [4] * 5)
    # t=2: sources -2..2; before the start or not yet known -> latest in window (1)
    np.testing.assert_allclose(forecast[1, :, 0], [1, 1, 0, 1, 1])


def test_seasonal_naive_week_falls_back_before_a_week_is_known(six_hourly: CityDataset) -> None:
    model = make_model("seasonal-naive-week", input_len=2, horizon=5).fit(six_hourly)
    assert model.season == "week"
    np.testing.assert_allclose(model.predict(six_hourly, np.array([8]))[0, :, 0], [7] * 5)


def test_seasonal_naive_rejects_an_unknown_season(six_hourly: CityDataset) -> None:
    with pytest.raises(ConfigError, match="season"):
        SeasonalNaive(season="month").fit(six_hourly)


@pytest.mark.parametrize("season", ["day", "week"])
def test_seasonal_naive_refuses_a_frequency_that_does_not_divide_a_day(
    make_dataset: DatasetBuilder, season: str
) -> None:
    dataset = make_dataset(np.ones((2 * 206, 2)), frequency="7min")
    with pytest.raises(ConfigError, match=r"^seasonal-naive: frequency 7min does not divide a day"):
        SeasonalNaive(season=season).fit(dataset)


def test_a_seven_minute_grid_has_206_time_of_day_slots(make_dataset: DatasetBuilder) -> None:
    dataset = make_dataset(np.ones((2 * 206, 2)), frequency="7min")
    assert dataset.steps_per_day == 206
    assert HistoricalAverage().fit(dataset).profile_.shape == (7, 206, 2)


# --- ridge --------------------------------------------------------------------------------


def sinusoids(periods: np.ndarray, steps: int) -> np.ndarray:
    """``[t n]`` sinusoids with their own period, level, amplitude and phase per sensor."""
    sensors = np.arange(periods.size)
    time = np.arange(steps)[:, None]
    return 20.0 + 3 * sensors + (2.0 + sensors) * np.sin(2 * np.pi * time / periods + sensors)


def test_ridge_recovers_an_exactly_linear_process(make_dataset: DatasetBuilder) -> None:
    # each sensor follows x_t = (1 + 2cos ω)(x_{t-1} - x_{t-2}) + x_{t-3} exactly
    dataset = make_dataset(sinusoids(np.full(6, 7.0), 400))
    model = Ridge(alpha=1e-8).fit(dataset.slice_steps(0, 300))
    times = np.arange(300, 400 - 12 + 1)
    error = model.predict(dataset, times) - target_windows(dataset.readings, times, 12)
    assert np.abs(error).max() < 1e-3
    assert model.weights_.shape == (1, 2 * 12 + 3, 12)


def test_ridge_per_sensor_fits_each_sensor_its_own_coefficients(
    make_dataset: DatasetBuilder,
) -> None:
    # two lags determine each sinusoid, but with different coefficients per period
    dataset = make_dataset(sinusoids(np.array([7.0, 5.0, 11.0]), 400), graph=SensorGraph.empty(3))
    times = np.arange(300, 400 - 3 + 1)
    target = target_windows(dataset.readings, times, 3)
    errors = {}
    for name in ("ridge", "ridge-per-sensor"):
        model = make_model(name, input_len=2, horizon=3, alpha=1e-8)
        model.fit(dataset.slice_steps(0, 300))
        errors[name] = np.abs(model.predict(dataset, times) - target).max()
    assert errors["ridge-per-sensor"] < 1e-3 < 0.1 < errors["ridge"]
    weights = model.weights_
    assert weights.shape == (3, 2 * 2 + 3, 3)
    assert not np.allclose(weights[0], weights[1], atol=1e-2)


def test_ridge_predicts_a_constant_sensor(make_dataset: DatasetBuilder) -> None:
    values = np.column_stack([np.full(60, 4.0), sinusoids(np.array([7.0]), 60)[:, 0]])
    values[20:25, 1] = nan
    dataset = make_dataset(values)
    model = Ridge(input_len=4, horizon=2, per_sensor=True).fit(dataset)
    forecast = model.predict(dataset, np.array([40, 60]))
    np.testing.assert_allclose(forecast[..., 0], 4.0, atol=1e-6)
    assert model.std_[0] == 1.0


def test_ridge_leaves_rows_with_a_missing_target_out_of_that_step() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 10, 3))  # [g r f]
    y = rng.standard_normal((1, 10, 2))  # [g r h]
    y[0, [2, 7], 1] = nan
    gram, moment = np.zeros((1, 2, 3, 3)), np.zeros((1, 3, 2))
    accumulate_normal_equations(gram, moment, x, y)
    kept = x[0, [0, 1, 3, 4, 5, 6, 8, 9]]
    np.testing.assert_allclose(gram[0, 0], x[0].T @ x[0])
    np.testing.assert_allclose(gram[0, 1], kept.T @ kept)
    np.testing.assert_allclose(moment[0, :, 1], kept.T @ y[0, [0, 1, 3, 4, 5, 6, 8, 9], 1])


@pytest.mark.parametrize("alpha", [-1.0, float("nan"), "big"])
def test_ridge_rejects_a_bad_alpha(make_dataset: DatasetBuilder, alpha: object) -> None:
    with pytest.raises(ConfigError, match="alpha"):
        Ridge(alpha=alpha).fit(make_dataset(np.ones((30, 2))))


def with_kind(dataset: CityDataset, kind: str) -> CityDataset:
    return replace(dataset, metadata=replace(dataset.metadata, kind=kind))


def test_ridge_chooses_a_large_alpha_on_noise(make_dataset: DatasetBuilder) -> None:
    # pure noise: the lags carry nothing, so the most shrinkage forecasts best
    rng = np.random.default_rng(1)
    dataset = make_dataset(50.0 + rng.standard_normal((240, 4)))
    model = Ridge(per_sensor=True).fit(dataset)  # no validation part: the last 10 % held out
    assert model.alpha_ == RIDGE_ALPHAS[-1] == 1000.0
    assert model.chosen_hyperparameters() == {"alpha": 1000.0}
    assert model.hyperparameters()["alpha"] is None
    maes = model.validation_maes_
    assert maes[1000.0] < maes[0.1]


def test_ridge_chooses_a_small_alpha_on_a_linear_process(make_dataset: DatasetBuilder) -> None:
    # an exactly linear process: any shrinkage costs accuracy
    dataset = make_dataset(sinusoids(np.array([7.0, 5.0, 11.0]), 400), graph=SensorGraph.empty(3))
    model = Ridge(input_len=4, horizon=3, per_sensor=True)
    model.fit(dataset.slice_steps(0, 300), validation=dataset.slice_steps(300, 400))
    assert model.alpha_ == RIDGE_ALPHAS[0] == 0.1
    maes = list(model.validation_maes_.values())
    assert maes == sorted(maes)  # the error grows with the penalty


def test_an_explicit_alpha_skips_the_search(make_dataset: DatasetBuilder, monkeypatch) -> None:
    def no_search(*args: object) -> None:
        raise AssertionError("searched although alpha was given")

    monkeypatch.setattr(Ridge, "_validation_errors", no_search)
    rng = np.random.default_rng(1)
    dataset = make_dataset(50.0 + rng.standard_normal((240, 4)))
    model = Ridge(alpha=10.0).fit(dataset, validation=dataset.slice_steps(200, 240))
    assert model.alpha_ == 10.0 and model.chosen_hyperparameters() == {}
    assert not hasattr(model, "validation_maes_")


def test_baselines_never_forecast_below_zero_on_count_data(make_dataset: DatasetBuilder) -> None:
    # sparse counts: a linear model overshoots below 0 after the bursts
    rng = np.random.default_rng(2)
    counts = rng.poisson(0.2, (300, 3)).astype(float)
    counts[::17] += 6
    as_level = with_kind(make_dataset(counts), "level")
    as_count = with_kind(make_dataset(counts), "count")
    times = np.arange(12, 300 - 12 + 1)
    level_forecast = Ridge(alpha=0.1).fit(as_level).predict(as_level, times)
    assert level_forecast.min() < 0  # what the clipping is for
    count_forecast = Ridge(alpha=0.1).fit(as_count).predict(as_count, times)
    np.testing.assert_allclose(count_forecast, np.maximum(level_forecast, 0), atol=1e-5)
    for name in ("last-value", "historical-average", "seasonal-naive", "ridge-per-sensor"):
        assert make_model(name).fit(as_count).predict(as_count, times).min() >= 0, name


# --- registry -----------------------------------------------------------------------------


def test_registry_lists_every_baseline() -> None:
    assert model_names() == sorted(MODELS)
    assert {
        "last-value",
        "historical-average",
        "seasonal-naive",
        "seasonal-naive-week",
        "ridge",
        "ridge-per-sensor",
    } <= set(model_names())


def test_registry_presets_and_overrides() -> None:
    assert make_model("ridge-per-sensor").per_sensor is True
    model = make_model("ridge-per-sensor", input_len=6, horizon=3, alpha=0.5)
    assert model.hyperparameters() == {
        "input_len": 6,
        "horizon": 3,
        "alpha": 0.5,
        "per_sensor": True,
    }
    assert make_model("seasonal-naive").season == "day"


def test_unknown_model_name_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownNameError, match="last-value") as raised:
        make_model("last-valu")
    assert "did you mean 'last-value'" in str(raised.value)
    assert isinstance(raised.value, KeyError)


def test_unknown_hyperparameter_names_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match="alpha, per_sensor"):
        make_model("ridge", lambda_=1.0)
    with pytest.raises(ConfigError, match="takes no hyperparameters"):
        make_model("last-value", alpha=1.0)


@pytest.mark.parametrize(
    ("name", "validated"),
    [
        ("ridge-per-sensor", True),
        ("ridge-per-sensor", False),  # the penalty chosen on held-out training samples
        ("historical-average", True),
        ("last-value", True),
    ],
)
def test_fits_made_a_few_rows_at_a_time_equal_fits_made_at_once(
    city_with_holes: CityDataset, name: str, validated: bool, monkeypatch
) -> None:
    # the chunks of a city ~1,000 times larger: sums over time, normal equations and solves
    times = np.arange(12, city_with_holes.num_steps - 12 + 1, 7)
    fitting = city_with_holes.slice_steps(0, 300)
    validation = city_with_holes.slice_steps(300, 400) if validated else None
    whole = make_model(name).fit(fitting, validation)
    # chunks of 5 samples, each in blocks of 2 sensors for ridge, fitted a block at a time
    monkeypatch.setattr(baselines, "_CHUNK_ELEMENTS", 5 * 2 * 27)
    monkeypatch.setattr(baselines, "_MIN_CHUNK_SAMPLES", 5)
    monkeypatch.setattr(baselines, "_GRAM_BYTES", 1)
    chunked = make_model(name).fit(fitting, validation)
    np.testing.assert_allclose(
        chunked.predict(city_with_holes, times),
        whole.predict(city_with_holes, times),
        rtol=1e-6,
        atol=1e-5,
    )
    if name.startswith("ridge"):
        assert chunked.alpha_ == whole.alpha_
        np.testing.assert_allclose(chunked.weights_, whole.weights_, rtol=1e-8, atol=1e-10)
