"""Training losses against hand-computed values on tiny tensors; the link to a forecast."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from urbanflow.errors import ConfigError
from urbanflow.training.engine import TrainingOptions, validation_criterion
from urbanflow.training.losses import (
    DISTRIBUTIONAL,
    LOSSES,
    TWEEDIE_POWER,
    forecast_from_output,
    loss_at_mean,
    masked_loss,
    negative_binomial_nll,
)

RAW = torch.tensor([[-1.0, 0.5], [2.0, 4.0]], dtype=torch.float64)
TARGET = torch.tensor([[0.0, 1.0], [3.0, 5.0]], dtype=torch.float64)
ALL = torch.ones_like(RAW)


def softplus(x: float) -> float:
    return math.log1p(math.exp(x))


def means() -> np.ndarray:
    """``[2 2]`` μ = softplus(RAW), computed by hand."""
    return np.log1p(np.exp(RAW.numpy()))


def test_poisson_is_mu_minus_y_log_mu_with_a_softplus_link() -> None:
    mu, y = means(), TARGET.numpy()
    expected = np.mean(mu - y * np.log(mu))
    assert masked_loss(RAW, TARGET, ALL, "poisson").item() == pytest.approx(expected)


def test_negative_binomial_matches_scipy() -> None:
    log_dispersion = torch.tensor([math.log(0.5), math.log(2.0)], dtype=torch.float64)
    alpha = np.exp(log_dispersion.numpy())
    mu = means()
    y = TARGET.numpy()
    logpmf = stats.nbinom.logpmf(y, n=1 / alpha, p=1 / (1 + alpha * mu))  # α per sensor
    loss = masked_loss(RAW, TARGET, ALL, "negative-binomial", log_dispersion=log_dispersion)
    assert loss.item() == pytest.approx(-logpmf.mean())
    per_item = negative_binomial_nll(torch.as_tensor(mu), TARGET, torch.as_tensor(alpha))
    np.testing.assert_allclose(per_item.numpy(), -logpmf)


def test_negative_binomial_needs_a_dispersion() -> None:
    with pytest.raises(ValueError, match="log_dispersion"):
        masked_loss(RAW, TARGET, ALL, "negative-binomial")


def test_tweedie_of_power_one_and_a_half() -> None:
    assert TWEEDIE_POWER == 1.5
    # −y·μ^(−1/2)/(−1/2) + μ^(1/2)/(1/2) = 2y/√μ + 2√μ
    mu, y = means(), TARGET.numpy()
    expected = np.mean(2 * y / np.sqrt(mu) + 2 * np.sqrt(mu))
    assert masked_loss(RAW, TARGET, ALL, "tweedie").item() == pytest.approx(expected)


@pytest.mark.parametrize("loss", LOSSES)
def test_missing_targets_are_ignored(loss: str) -> None:
    mask = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    holes = TARGET.clone()
    holes[:, 1] = math.nan  # what a missing reading may hold
    log_dispersion = torch.zeros(2, dtype=torch.float64)
    kept = masked_loss(RAW[:, :1], TARGET[:, :1], mask[:, :1], loss, 2.0, log_dispersion[:1])
    for target in (TARGET, holes):
        got = masked_loss(RAW, target, mask, loss, 2.0, log_dispersion)
        assert got.item() == pytest.approx(kept.item())


def test_mae_and_huber_are_unchanged_z_scored_errors() -> None:
    raw = torch.tensor([1.0, 2.0, 7.0])
    target = torch.tensor([1.5, 0.0, 3.0])
    mask = torch.tensor([1.0, 0.0, 1.0])
    assert masked_loss(raw, target, mask, "mae", scale=2.0).item() == pytest.approx(
        (0.25 + 2.0) / 2
    )
    # z-scored errors 0.25 and 2.0: 0.5·0.25² and 2.0 − 0.5
    huber = masked_loss(raw, target, mask, "huber", scale=2.0).item()
    assert huber == pytest.approx((0.5 * 0.0625 + 1.5) / 2)


def test_forecast_is_the_positive_mean_for_distributional_losses() -> None:
    raw = torch.tensor([-30.0, -1.0, 0.0, 5.0])
    for loss in DISTRIBUTIONAL:
        forecast = forecast_from_output(raw, loss)
        assert (forecast > 0).all()
        np.testing.assert_allclose(forecast.numpy(), [softplus(x) for x in raw.tolist()])
    for loss in ("mae", "huber"):
        assert torch.equal(forecast_from_output(raw, loss), raw)


def test_loss_at_mean_equals_the_loss_of_the_output() -> None:
    mean = forecast_from_output(RAW, "poisson")
    for loss in ("poisson", "tweedie"):
        assert loss_at_mean(mean, TARGET, ALL, loss).item() == pytest.approx(
            masked_loss(RAW, TARGET, ALL, loss).item()
        )


def test_validation_criterion_names_what_early_stopping_scores() -> None:
    assert validation_criterion("mae") == validation_criterion("huber") == "MAE"
    assert validation_criterion("poisson") == "poisson loss"
    assert validation_criterion("negative-binomial") == "negative-binomial loss"


def test_an_unknown_loss_is_refused() -> None:
    with pytest.raises(ConfigError, match="loss"):
        TrainingOptions(loss="mse")
    with pytest.raises(ValueError, match="unknown loss 'mse'"):
        loss_at_mean(RAW, TARGET, ALL, "mse")
    for loss in LOSSES:
        TrainingOptions(loss=loss)
