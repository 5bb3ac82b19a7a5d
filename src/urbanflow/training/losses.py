"""Training losses over present targets, and the link from a network's output to a forecast.

A network's output, scaled back to the data's unit, is ``raw``. For ``mae`` and ``huber`` the
forecast is ``raw`` itself and the loss is the mean absolute (or Huber) error in z-scored units.
The distributional losses fit the mean ``μ = softplus(raw)`` (always > 0) of a distribution of
non-negative values, and the forecast is that mean:

- ``poisson``: negative log-likelihood ``μ − y·log μ`` (the constant ``log y!`` left out);
- ``negative-binomial``: variance ``μ + α μ²`` with a learned dispersion ``α = exp(a)`` per
  sensor (``a`` a parameter ``log_dispersion [n]`` registered on the network), full
  negative log-likelihood;
- ``tweedie``: the deviance of the Tweedie distribution of power ``p = 1.5`` (a compound of
  Poisson counts of gamma amounts, with exact zeros), up to terms without ``μ``:
  ``−y·μ^(1−p)/(1−p) + μ^(2−p)/(2−p)``.

Each loss is averaged over present targets (``mask`` 1 = present) only.
"""

from __future__ import annotations

import torch
from torch import nn

LOSSES = ("mae", "huber", "poisson", "negative-binomial", "tweedie")
DISTRIBUTIONAL = ("poisson", "negative-binomial", "tweedie")
TWEEDIE_POWER = 1.5
_EPSILON = 1e-6


def is_distributional(loss: str) -> bool:
    """Whether ``loss`` fits a distribution's mean through the softplus link.

    Parameters
    ----------
    loss
        A name of :data:`LOSSES`.
    """
    return loss in DISTRIBUTIONAL


def forecast_from_output(raw: torch.Tensor, loss: str) -> torch.Tensor:
    """The forecast (the fitted mean for distributional losses) from the unscaled output.

    Parameters
    ----------
    raw
        ``[b H n]`` network output in the data's unit (``Scaler.inverse`` applied).
    loss
        The loss the network was trained with.
    """
    return nn.functional.softplus(raw) if is_distributional(loss) else raw


def masked_loss(
    raw: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    loss: str,
    scale: float = 1.0,
    log_dispersion: torch.Tensor | None = None,
    count: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean loss over present targets: their summed loss divided by their number, or by
    ``count`` when given.

    Parameters
    ----------
    raw
        ``[b H n]`` network output in the data's unit.
    target
        ``[b H n]`` true values (anything where missing).
    mask
        ``[b H n]`` 1 where the target is present, else 0.
    loss
        A name of :data:`LOSSES`.
    scale
        The training readings' standard deviation: ``mae`` and ``huber`` errors are divided by
        it (z-scored units), the distributional losses use the data's own unit.
    log_dispersion
        ``[n]`` log of the negative-binomial dispersion per sensor; required for that loss.
    count
        The number to divide by instead of ``mask.sum()``: in data-parallel training, the
        present targets of the global batch over every process, so that each process's part
        adds up to the mean over the global batch (``urbanflow.training.distributed``).
    """
    count = (mask.sum() if count is None else count).clamp_min(1.0)
    target = torch.where(mask > 0, target, torch.zeros_like(target))  # NaN where missing: 0
    if loss in ("mae", "huber"):
        error = (raw - target) * mask / scale
        if loss == "huber":
            per_item = nn.functional.huber_loss(error, torch.zeros_like(error), reduction="none")
        else:
            per_item = error.abs()
        return per_item.sum() / count
    return loss_at_mean(forecast_from_output(raw, loss), target, mask, loss, log_dispersion, count)


def loss_at_mean(
    mean: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    loss: str,
    log_dispersion: torch.Tensor | None = None,
    count: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean distributional loss over present targets, given the fitted means.

    Parameters
    ----------
    mean
        ``[b H n]`` fitted means μ (> 0; clamped at a small positive number).
    target
        ``[b H n]`` true values (anything where missing).
    mask
        ``[b H n]`` 1 where the target is present, else 0.
    loss
        ``poisson``, ``negative-binomial`` or ``tweedie``.
    log_dispersion
        ``[n]`` log of the negative-binomial dispersion per sensor; required for that loss.
    count
        The number to divide by instead of ``mask.sum()`` (see :func:`masked_loss`).
    """
    count = (mask.sum() if count is None else count).clamp_min(1.0)
    target = torch.where(mask > 0, target, torch.zeros_like(target))  # NaN where missing: 0
    mean = mean.clamp_min(_EPSILON)
    if loss == "poisson":
        per_item = mean - target * torch.log(mean)
    elif loss == "negative-binomial":
        if log_dispersion is None:
            raise ValueError("the negative-binomial loss needs the network's log_dispersion")
        per_item = negative_binomial_nll(mean, target, log_dispersion.exp().clamp_min(_EPSILON))
    elif loss == "tweedie":
        p = TWEEDIE_POWER
        per_item = -target * mean.pow(1 - p) / (1 - p) + mean.pow(2 - p) / (2 - p)
    else:
        raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")
    return (per_item * mask).sum() / count


def negative_binomial_nll(
    mean: torch.Tensor, target: torch.Tensor, dispersion: torch.Tensor
) -> torch.Tensor:
    """Per-item negative log-likelihood of ``target`` under NB(mean, variance mean + α mean²).

    Parameters
    ----------
    mean
        ``[... n]`` means μ > 0.
    target
        ``[... n]`` non-negative counts y.
    dispersion
        ``[n]`` α > 0 per sensor (broadcast over the leading axes).
    """
    r = 1.0 / dispersion  # number of failures; variance μ + μ²/r
    return -(
        torch.lgamma(target + r)
        - torch.lgamma(r)
        - torch.lgamma(target + 1)
        + r * torch.log(r / (r + mean))
        + target * torch.log(mean / (r + mean))
    )
