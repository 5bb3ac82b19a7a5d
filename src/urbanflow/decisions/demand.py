"""The demand a count forecast implies over the next K steps, as a distribution per zone.

A count model forecasts the mean departures ``μ_k`` of each zone at each step ``k = 1 … K``.
The departures of the K steps together are treated as

- **Poisson** with mean ``M = Σ_k μ_k`` (the default): the sum of independent Poisson steps is
  Poisson with the summed mean, exactly;
- **negative binomial** when a dispersion (size) ``r`` is given, each step being NB with mean
  ``μ_k`` and variance ``μ_k + μ_k²/r``: the sum keeps the mean ``M`` and the summed variance
  ``M + Σ_k μ_k²/r``, which a negative binomial of size ``r_K = r·M² / Σ_k μ_k²`` matches
  (moment matching; exact, ``r_K = K·r``, when the steps share one mean).

The demand target of a zone is the ``q`` quantile of that distribution (``scipy.stats``
``ppf``): the smallest count ``d`` with ``P(D ≤ d) ≥ q``. The expected unmet demand of a zone
holding ``c`` vehicles is ``E[(D − c)⁺] = M − Σ_{d<c} P(D > d)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from urbanflow.errors import ConfigError, DataError
from urbanflow.models.base import Forecaster

DEFAULT_QUANTILE = 0.7
"""Cover the K-step departures of a zone with probability 0.7: a little above the mean, since
an unmet request costs more than an idle vehicle."""


def check_quantile(quantile: float) -> float:
    """``quantile`` as a float; a ConfigError unless it lies strictly between 0 and 1."""
    if not 0 < quantile < 1:
        raise ConfigError(f"quantile {quantile} must lie strictly between 0 and 1, e.g. 0.7")
    return float(quantile)


@dataclass(frozen=True)
class KStepDemand:
    """The distribution of each zone's departures summed over K steps.

    Parameters
    ----------
    mean
        ``[n]`` ``M``, the summed forecast mean of each zone, ≥ 0.
    size
        ``[n]`` negative-binomial size ``r_K`` of each zone, or None (the default): Poisson.
    """

    mean: np.ndarray
    size: np.ndarray | None = None

    def _distribution(self):  # scipy's frozen distribution, one parameter per zone
        mean = np.asarray(self.mean, dtype=np.float64)
        if self.size is None:
            return stats.poisson(mean)
        size = np.asarray(self.size, dtype=np.float64)
        return stats.nbinom(size, size / (size + mean))

    def quantile(self, quantile: float) -> np.ndarray:
        """``[n]`` int64: the ``quantile`` of each zone's K-step departures (0 where M = 0)."""
        check_quantile(quantile)
        values = np.nan_to_num(self._distribution().ppf(quantile), nan=0.0)
        return np.where(np.asarray(self.mean) > 0, values, 0).astype(np.int64)

    def at_least(self, counts: np.ndarray) -> np.ndarray:
        """``P(D ≥ counts)`` per zone; ``counts`` is ``[... n]`` whole numbers."""
        return self._distribution().sf(np.asarray(counts) - 1)

    def expected_unmet(self, vehicles: np.ndarray) -> np.ndarray:
        """``[n]`` ``E[(D − c)⁺]``: the departures of each zone that ``c = vehicles`` (≥ 0
        integers) leave unserved, expected."""
        vehicles = np.asarray(vehicles, dtype=np.int64)
        mean = np.asarray(self.mean, dtype=np.float64)
        most = int(vehicles.max(initial=0))
        if most == 0:
            return mean.copy()
        counts = np.arange(most)[:, None]  # [c n]: d = 0 … c_max − 1
        survival = self._distribution().sf(counts)  # P(D > d)
        survival = np.where(counts < vehicles[None, :], survival, 0.0)
        return np.maximum(mean - survival.sum(axis=0), 0.0)


def model_size(model: Forecaster) -> np.ndarray | None:
    """``[n]`` the negative-binomial size ``r = 1/α`` per zone of a network trained with the
    ``negative-binomial`` loss (variance ``μ + α μ²``; an ensemble's members' ``α`` averaged),
    else None: the model's counts are taken as Poisson.

    Parameters
    ----------
    model
        A fitted forecaster.
    """
    family, dispersion = model.forecast_distribution()
    if family != "negative-binomial" or dispersion is None:
        return None
    return 1.0 / np.maximum(dispersion, 1e-9)


def k_step_demand(means: np.ndarray, size: float | np.ndarray | None = None) -> KStepDemand:
    """The K-step demand of forecast means ``[K, n]`` (negative values, a model's small
    overshoots below zero, count as 0).

    Parameters
    ----------
    means
        ``[K n]`` forecast mean departures per step and zone, finite.
    size
        The negative-binomial size ``r`` > 0 of every step (one number, or ``[n]`` one per
        zone, :func:`model_size`), or None (the default): Poisson steps.
    """
    means = np.asarray(means, dtype=np.float64)
    if means.ndim != 2 or means.shape[0] < 1:
        raise DataError(f"forecast means must be [K n] with K ≥ 1; got shape {means.shape}")
    if not np.isfinite(means).all():
        raise DataError("forecast means must be finite; fill or drop the zones without one")
    means = np.maximum(means, 0.0)
    total = means.sum(axis=0)
    if size is None:
        return KStepDemand(total)
    size = np.broadcast_to(np.asarray(size, dtype=np.float64), total.shape)
    if not (np.isfinite(size) & (size > 0)).all():
        raise ConfigError(f"negative-binomial size {size.min()} must be finite and > 0")
    squares = np.square(means).sum(axis=0)
    sizes = np.where(squares > 0, size * np.square(total) / np.maximum(squares, 1e-300), size)
    return KStepDemand(total, sizes)
