"""The forecaster contract, run against every name in the model registry."""

from __future__ import annotations

import numpy as np
import pytest

from urbanflow import CityDataset
from urbanflow.data.windows import target_windows
from urbanflow.errors import NotFittedError
from urbanflow.models.base import Forecaster
from urbanflow.models.registry import make_model, model_names, neural_names

# MAE on the last three days of the `city` fixture, horizon 3, fitted on the first 18 days.
# Observed: last-value 3.79 (a daily sinusoid drifts in 3 h), every other model 0.24-0.33
# (noise floor 0.24); predicting each sensor's mean scores 7.3, one step off about 2.
MAE_CEILINGS = {
    "last-value": 4.5,
    "historical-average": 0.5,
    "seasonal-naive": 0.5,
    "seasonal-naive-week": 0.5,
    "ridge": 0.5,
    "ridge-per-sensor": 0.5,
}

# Neural models: a few epochs keep the suite fast; their ceiling is set from observed runs.
NEURAL_OPTIONS = {"max_epochs": 4, "batch_size": 64, "patience": 4}
# After 4 epochs the recurrent tgcn learns slowest (4.86 observed); the others pass 4.0.
MAE_CEILINGS["tgcn"] = 6.0
for _name in neural_names():
    MAE_CEILINGS.setdefault(_name, 4.0)

names = pytest.mark.parametrize("name", model_names())


def build(name: str, **hyperparameters: object) -> Forecaster:
    """A registry model; neural ones with short training."""
    if name in neural_names():
        hyperparameters = {**NEURAL_OPTIONS, **hyperparameters}
    return make_model(name, **hyperparameters)


def evaluation_times(dataset: CityDataset, first: int, horizon: int) -> np.ndarray:
    return np.arange(first, dataset.num_steps - horizon + 1)


@names
def test_fit_returns_self(name: str, city: CityDataset) -> None:
    model = build(name)
    assert model.fit(city) is model
    assert model.is_fitted
    assert isinstance(model.parameter_count(), int)
    assert model.parameter_count() >= 0


@names
def test_init_only_stores_hyperparameters(name: str) -> None:
    model = build(name, input_len=6, horizon=4)
    assert not model.is_fitted
    assert not [key for key in vars(model) if key.endswith("_")]
    clone = make_model(name, **model.hyperparameters())
    assert clone.hyperparameters() == model.hyperparameters()
    assert (model.input_len, model.horizon) == (6, 4)


@names
def test_predict_before_fit_raises(name: str, city: CityDataset) -> None:
    model = build(name)
    with pytest.raises(NotFittedError, match="fit"):
        model.predict(city, np.array([12]))
    with pytest.raises(ValueError):
        model.predict(city, np.array([12]))


@names
def test_does_not_mutate_the_dataset(name: str, city_with_holes: CityDataset) -> None:
    before = city_with_holes.readings.copy()
    model = build(name).fit(city_with_holes)
    model.predict(city_with_holes, np.arange(12, city_with_holes.num_steps + 1))
    np.testing.assert_array_equal(city_with_holes.readings, before)


@names
def test_shape_and_finite_with_missing_inputs(name: str, city_with_holes: CityDataset) -> None:
    model = build(name, input_len=8, horizon=5).fit(city_with_holes.slice_steps(0, 300))
    times = np.arange(8, city_with_holes.num_steps + 1)  # up to a live forecast past the end
    forecast = model.predict(city_with_holes, times)
    assert forecast.shape == (times.size, 5, city_with_holes.num_sensors)
    assert forecast.dtype == np.float32
    assert np.isfinite(forecast).all()
    assert model.predict(city_with_holes, times[:0]).shape == (0, 5, 8)


@names
def test_accuracy_ceiling(name: str, city: CityDataset) -> None:
    if name not in MAE_CEILINGS:
        pytest.fail(f"set an accuracy ceiling for {name!r} in MAE_CEILINGS")
    horizon, first_test = 3, 18 * 24
    model: Forecaster = build(name, horizon=horizon).fit(city.slice_steps(0, first_test))
    times = evaluation_times(city, first_test, horizon)
    error = model.predict(city, times) - target_windows(city.readings, times, horizon)
    assert np.abs(error).mean() < MAE_CEILINGS[name]
