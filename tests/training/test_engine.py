import math
import time

import numpy as np
import pytest
import torch
from torch import nn

from urbanflow.errors import ConfigError
from urbanflow.training.engine import (
    TrainingOptions,
    predict_batches,
    prediction_batch,
    sensor_blocks,
    train,
    validation_sample,
    validation_score,
)
from urbanflow.training.losses import masked_loss
from urbanflow.training.tensors import Scaler, SeriesTensors


def test_masked_loss_ignores_missing_targets():
    forecast = torch.tensor([1.0, 2.0, 3.0])
    target = torch.tensor([1.5, 0.0, 5.0])
    mask = torch.tensor([1.0, 0.0, 1.0])
    assert masked_loss(forecast, target, mask, "mae").item() == pytest.approx((0.5 + 2.0) / 2)
    huber = masked_loss(forecast, target, mask, "huber").item()
    assert huber == pytest.approx((0.5 * 0.25 + (2.0 - 0.5)) / 2)


def test_scaler_fits_present_values_only():
    scaler = Scaler.fit(np.array([[1.0, np.nan], [3.0, np.nan]]))
    assert (scaler.mean, scaler.std) == (2.0, 1.0)
    assert Scaler.fit(np.array([[np.nan]])) == Scaler(0.0, 1.0)


def test_bad_options_are_refused():
    with pytest.raises(ConfigError, match="loss"):
        TrainingOptions(loss="mse")
    with pytest.raises(ConfigError, match="time budget"):
        TrainingOptions(time_budget_min=0)


class Lagged(nn.Module):
    """Predicts every step as a learned multiple of the last input value."""

    def __init__(self, horizon: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.horizon = horizon

    def forward(self, x, tod, dow):
        return (self.weight * x[:, -1:, :, 0]).expand(-1, self.horizon, -1)


def series(values: np.ndarray, scaler: Scaler) -> SeriesTensors:
    steps = values.shape[0] + 4
    return SeriesTensors(
        readings=torch.tensor(values, dtype=torch.float32),
        scaler=scaler,
        tod=torch.zeros(steps, dtype=torch.int64),
        dow=torch.zeros(steps, dtype=torch.int64),
    )


def persistent_series(steps: int = 200, sensors: int = 3) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.cumsum(rng.standard_normal((steps, sensors)), axis=0).astype(np.float32)


def test_training_learns_restores_best_and_is_reproducible():
    values = persistent_series()
    scaler = Scaler(0.0, 1.0)
    data = series(values, scaler)
    times = np.arange(4, 150)
    validation = np.arange(150, 196)
    reports, weights = [], []
    for _ in range(2):
        model = Lagged(2)
        report = train(
            model,
            data,
            times,
            data,
            validation,
            4,
            2,
            scaler,
            TrainingOptions(max_epochs=15, learning_rate=0.05, seed=3),
        )
        reports.append(report)
        weights.append(model.weight.item())
    assert weights[0] == weights[1]  # seeded
    best = min(h["validation_score"] for h in reports[0].history)
    assert reports[0].best_validation_score == pytest.approx(best)
    assert reports[0].history[reports[0].best_epoch - 1]["validation_score"] == pytest.approx(best)
    assert 0.5 < weights[0] < 1.5  # learned persistence from a start of 0


def test_early_stopping_and_time_budget():
    values = persistent_series()
    data = series(values, Scaler(0.0, 1.0))
    model = Lagged(2)
    report = train(
        model,
        data,
        np.arange(4, 150),
        data,
        np.arange(150, 196),
        4,
        2,
        Scaler(0.0, 1.0),
        TrainingOptions(max_epochs=200, learning_rate=0.05, patience=3),
    )
    assert report.stopped_by == "early_stopping"
    assert report.epochs_run < 200
    budget = train(
        Lagged(2),
        data,
        np.arange(4, 150),
        data,
        np.arange(150, 196),
        4,
        2,
        Scaler(0.0, 1.0),
        TrainingOptions(max_epochs=10_000, time_budget_min=0.02, patience=10_000),
    )
    assert budget.stopped_by == "time_budget"
    assert budget.seconds < 0.02 * 60 * 3
    assert not math.isnan(budget.best_validation_score)


class Slow(Lagged):
    """``Lagged`` that takes 20 ms per call, so that one epoch outlasts a small budget."""

    calls = 0

    def forward(self, x, tod, dow):
        Slow.calls += 1
        time.sleep(0.02)
        return super().forward(x, tod, dow)


def test_a_time_budget_ends_an_epoch_between_batches_and_keeps_the_best_weights():
    data = series(persistent_series(), Scaler(0.0, 1.0))
    model = Slow(2)
    Slow.calls = 0
    # 146 samples in batches of 2: 73 batches of 20 ms, about 1.5 s an epoch; budget 0.5 s
    report = train(
        model,
        data,
        np.arange(4, 150),
        data,
        np.arange(150, 196),
        4,
        2,
        Scaler(0.0, 1.0),
        TrainingOptions(max_epochs=50, batch_size=2, learning_rate=0.05, time_budget_min=0.5 / 60),
    )
    assert report.stopped_by == "time_budget"
    assert report.epochs_run == 1  # ended inside the first epoch, not after it
    assert Slow.calls < 73  # fewer batches (and one validation pass) than a whole epoch
    assert not math.isnan(report.best_validation_score) and report.best_epoch == 1
    assert model.weight.item() != 0.0  # the part-epoch's weights were kept


def test_sensor_blocks_split_a_large_city_into_near_equal_sorted_blocks():
    generator = torch.Generator().manual_seed(0)
    assert sensor_blocks(1000, 1024, generator) == [None]
    assert sensor_blocks(5000, None, generator) == [None]
    blocks = sensor_blocks(2500, 1024, generator)
    assert len(blocks) == 3
    assert {len(block) for block in blocks} <= {833, 834}
    assert all(bool((block[1:] > block[:-1]).all()) for block in blocks)
    assert sorted(torch.cat(blocks).tolist()) == list(range(2500))  # each sensor once


class PerSensor(nn.Module):
    """One learned multiple of the last input per sensor; forecasts any subset of sensors."""

    sensor_subsets = True

    def __init__(self, sensors: int, horizon: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(sensors))
        self.horizon = horizon
        self.calls: list[int] = []

    def forward(self, x, tod, dow, sensors=None):
        weight = self.weight if sensors is None else self.weight[sensors]
        last = x[:, -1, :, 0] if sensors is None else x[:, -1, sensors, 0]
        self.calls.append(last.shape[1])
        return (weight * last).unsqueeze(1).expand(-1, self.horizon, -1)


def test_a_city_larger_than_a_step_is_trained_block_by_block_on_every_target():
    values = persistent_series(sensors=10)
    values[5:40, 2] = np.nan  # missing targets are not counted
    data = series(values, Scaler(0.0, 1.0))
    times = np.arange(4, 150)
    model = PerSensor(10, 2)
    options = TrainingOptions(max_epochs=2, batch_size=50, learning_rate=0.05, sensors_per_step=4)
    report = train(model, data, times, data, np.arange(150, 196), 4, 2, Scaler(0.0, 1.0), options)
    steps = [c for c in model.calls if c < 10]  # validation forecasts all 10 sensors
    assert len(steps) == 2 * math.ceil(len(times) / 50) * 3  # 3 blocks a batch, 2 epochs
    assert set(steps) == {3, 4}
    _, present = data.targets(torch.as_tensor(times), 2)
    assert report.targets == 2 * int(present.sum())  # every present target, twice
    assert bool((model.weight != 0).all())  # every sensor's weight was trained
    whole = PerSensor(10, 2)
    train(
        whole,
        data,
        times,
        data,
        np.arange(150, 196),
        4,
        2,
        Scaler(0.0, 1.0),
        TrainingOptions(max_epochs=2, batch_size=50, learning_rate=0.05, sensors_per_step=None),
    )
    assert set(whole.calls) == {10}  # None: every sensor in each step


def test_the_streamed_validation_score_equals_the_score_of_all_forecasts_at_once():
    values = persistent_series(sensors=5)
    values[160:170, 1] = np.nan
    data = series(values, Scaler(0.0, 1.0))
    model = PerSensor(5, 2)
    with torch.no_grad():
        model.weight.copy_(torch.linspace(0.5, 1.5, 5))
    times = np.arange(150, 196)
    forecast = predict_batches(model, data, times, 4, Scaler(0.0, 1.0))
    target, mask = data.targets(torch.as_tensor(times), 2)
    expected = float(((forecast - target).abs() * mask).sum() / mask.sum())
    assert validation_score(model, data, times, 4, 2, Scaler(0.0, 1.0)) == pytest.approx(expected)
    assert prediction_batch(207) == 256 and prediction_batch(20_000) == 3


def test_validation_on_a_large_city_scores_evenly_spaced_samples_up_to_a_window_budget():
    times = np.arange(100, 1100)
    assert validation_sample(times, 207) is times  # 207 000 windows: all kept
    kept = validation_sample(times, 20_000)  # 2**21 // 20 000 = 104 samples
    assert len(kept) == 104 and kept[0] == 100 and kept[-1] == 1099
    assert bool((np.diff(kept) >= 9).all())  # evenly spread, not the first 104
