import math
import time

import numpy as np
import pytest
import torch
from torch import nn

from urbanflow.errors import ConfigError
from urbanflow.training.engine import TrainingOptions, train
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
    present = ~np.isnan(values)
    scaled = np.where(present, (np.nan_to_num(values) - scaler.mean) / scaler.std, 0)
    steps = values.shape[0] + 4
    return SeriesTensors(
        values=torch.tensor(scaled, dtype=torch.float32),
        present=torch.tensor(present, dtype=torch.float32),
        raw=torch.tensor(np.nan_to_num(values), dtype=torch.float32),
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
