"""Capacity of occupancy data: how full each unit is forecast to be, and how likely it is full.

For a bundle trained on occupancy data whose sensors have a capacity (beds, berths, spaces;
``LiveModel.capacity``), per sensor and horizon step:

- ``utilisation = forecast / capacity`` (1.0 = full);
- ``p_above_capacity = 1 − P(value < capacity)``: the probability that the reading reaches or
  exceeds the capacity, from the same conformal distribution the intervals and the alert rules
  use (``urbanflow.models.conformal.probability_below``: the forecast plus the sensor's scale
  times the calibration's residual scores). The distribution is continuous, so this is also
  ``1 − P(value ≤ capacity)``.

Both are NaN for a sensor without a forecast or without a capacity. The ``GET /v1/forecasts``
answer and the ``above_capacity`` alert condition read them from here.
"""

from __future__ import annotations

import numpy as np

from urbanflow.models.conformal import Calibration, probability_below


def utilisation(values: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """``[h n]`` forecast / capacity; NaN where either is unknown.

    Parameters
    ----------
    values
        ``[h n]`` point forecasts, NaN for a sensor without one.
    capacity
        ``[n]`` capacities, NaN where unknown.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(values, dtype=np.float64) / np.asarray(capacity, dtype=np.float64)


def probability_above_capacity(
    calibration: Calibration, scale: np.ndarray, values: np.ndarray, capacity: np.ndarray
) -> np.ndarray:
    """``[h n]`` probability that each target reaches or exceeds its sensor's capacity; NaN
    where the forecast or the capacity is unknown.

    Parameters
    ----------
    calibration
        The bundle's conformal calibration (its scores give the distribution's shape).
    scale
        ``[h n]`` the sensors' scales: the online scale the forecast's intervals were computed
        with, or the calibration's.
    values
        ``[h n]`` point forecasts, NaN for a sensor without one.
    capacity
        ``[n]`` capacities, NaN where unknown.
    """
    values = np.asarray(values, dtype=np.float64)
    capacity = np.asarray(capacity, dtype=np.float64)
    unknown = np.isnan(values) | np.isnan(capacity)[None, :]
    # a NaN would sort above every score; fill, then blank those cells again
    filled = np.where(unknown, 0.0, values)
    threshold = np.where(np.isnan(capacity), 0.0, capacity)[None, :]
    below = probability_below(calibration, scale, filled, threshold)  # type: ignore[arg-type]
    return np.where(unknown, np.nan, 1.0 - below)
