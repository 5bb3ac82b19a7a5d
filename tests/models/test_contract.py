"""The forecaster contract, run against every name in the model registry."""

from __future__ import annotations

import numpy as np
import pytest
from tests.models.conftest import daily_sinusoids

from urbanflow import CityDataset
from urbanflow.data.windows import target_windows
from urbanflow.errors import NotFittedError
from urbanflow.models.base import Forecaster
from urbanflow.models.registry import make_model, model_names, neural_names

# Accuracy rules. A model fitted on the first 18 days of the `city` fixture forecasts the
# last three, horizon 3; its MAE must stay below FACTOR × the MAE of a REFERENCE forecast that
# `reference_maes` computes with plain NumPy on the same targets:
#   "noise floor": the noise-free daily sinusoids themselves, the best any forecast can do
#       (the fixture adds Gaussian noise of σ 0.3 to them: about 0.24);
#   "last value": each sensor's latest reading, repeated (about 3.8: a sinusoid drifts in 3 h);
#   "training mean": each sensor's mean over the 18 fitting days (about 7.3).
# Every model must also beat the training mean.
ACCURACY_RULES: dict[str, tuple[str, float]] = {
    # It is the last-value forecast: the same MAE, up to float32 rounding.
    "last-value": ("last value", 1.0001),
    # A daily profile or a linear fit on the lags recovers the cycle: within twice the noise
    # floor (seasonal-naive copies one noisy reading, so √2 × the floor is its expected MAE).
    "historical-average": ("noise floor", 2.0),
    "seasonal-naive": ("noise floor", 2.0),
    "seasonal-naive-week": ("noise floor", 2.0),
    "ridge": ("noise floor", 2.0),
    "ridge-per-sensor": ("noise floor", 2.0),
    # The recurrent tgcn learns slowest: after 4 epochs, within 50 % of the last value.
    "tgcn": ("last value", 1.5),
}

# Neural models: a few epochs (seed 0, the default) keep the suite fast. After these 4 epochs
# each must beat the last value, tgcn excepted above.
NEURAL_OPTIONS = {"max_epochs": 4, "batch_size": 64, "patience": 4}
for _name in neural_names():
    ACCURACY_RULES.setdefault(_name, ("last value", 1.0))

names = pytest.mark.parametrize("name", model_names())
# Tests that fit: every neural model but stid (the quickest, the demo's) trains for a few
# epochs in each, so those cases are marked slow; `pytest -m "not slow"` keeps stid's.
fitted_names = pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=pytest.mark.slow)
        if name in neural_names() and name != "stid"
        else name
        for name in model_names()
    ],
)


def build(name: str, **hyperparameters: object) -> Forecaster:
    """A registry model; neural ones with short training."""
    if name in neural_names():
        hyperparameters = {**NEURAL_OPTIONS, **hyperparameters}
    return make_model(name, **hyperparameters)


def evaluation_times(dataset: CityDataset, first: int, horizon: int) -> np.ndarray:
    return np.arange(first, dataset.num_steps - horizon + 1)


def reference_maes(city: CityDataset, first_test: int, horizon: int) -> dict[str, float]:
    """MAE of each reference forecast of ACCURACY_RULES on the forecasts issued from
    ``first_test`` on, in plain NumPy; ``city`` is the fixture (conftest's daily_sinusoids)."""
    values = city.readings[..., 0].astype(np.float64)
    times = evaluation_times(city, first_test, horizon)
    steps = times[:, None] + np.arange(horizon)  # [b h]: the target steps of each forecast
    clean = daily_sinusoids(noise=0.0)
    assert clean.shape == values.shape and np.abs(values - clean).max() < 3.0  # σ 0.3 noise
    forecasts = {
        "noise floor": clean[steps],
        "last value": values[times - 1][:, None, :],
        "training mean": values[:first_test].mean(axis=0),
    }
    return {name: float(np.abs(values[steps] - f).mean()) for name, f in forecasts.items()}


@fitted_names
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


@fitted_names
def test_does_not_mutate_the_dataset(name: str, city_with_holes: CityDataset) -> None:
    before = city_with_holes.readings.copy()
    model = build(name).fit(city_with_holes)
    model.predict(city_with_holes, np.arange(12, city_with_holes.num_steps + 1))
    np.testing.assert_array_equal(city_with_holes.readings, before)


@fitted_names
def test_shape_and_finite_with_missing_inputs(name: str, city_with_holes: CityDataset) -> None:
    model = build(name, input_len=8, horizon=5).fit(city_with_holes.slice_steps(0, 300))
    times = np.arange(8, city_with_holes.num_steps + 1)  # up to a live forecast past the end
    forecast = model.predict(city_with_holes, times)
    assert forecast.shape == (times.size, 5, city_with_holes.num_sensors)
    assert forecast.dtype == np.float32
    assert np.isfinite(forecast).all()
    assert model.predict(city_with_holes, times[:0]).shape == (0, 5, 8)


@fitted_names
def test_accuracy_rule(name: str, city: CityDataset) -> None:
    if name not in ACCURACY_RULES:
        pytest.fail(f"give {name!r} an accuracy rule in ACCURACY_RULES")
    horizon, first_test = 3, 18 * 24
    references = reference_maes(city, first_test, horizon)
    assert references["noise floor"] < references["last value"] < references["training mean"]
    model: Forecaster = build(name, horizon=horizon).fit(city.slice_steps(0, first_test))
    times = evaluation_times(city, first_test, horizon)
    error = model.predict(city, times) - target_windows(city.readings, times, horizon)
    mae = float(np.abs(error).mean())
    reference, factor = ACCURACY_RULES[name]
    assert mae < references["training mean"], f"{name}: MAE {mae:.3f}, {references}"
    assert mae < factor * references[reference], (
        f"{name}: MAE {mae:.3f}, above {factor} × the {reference} MAE "
        f"{references[reference]:.3f} ({references})"
    )
