"""Whether a rule's condition holds for each sensor, at one issued forecast.

Inputs are plain arrays, so this works the same in the service, a benchmark or a notebook:

- ``below`` / ``above``: the probability, per step and sensor, that the target falls below the
  rule's threshold (``[h n]``), or a callable ``probability_below(threshold) -> [h n]`` such as
  ``lambda t: conformal.probability_below(calibration, online.scale, forecast, t)``. The rule
  holds for a sensor when the largest probability over the window's steps (``k = 1 … steps``)
  reaches ``p``. For ``above`` the probability per step is ``1 − P(below)``, i.e. at or above
  the threshold. A sensor whose probabilities in the window are all NaN (no forecast) is left
  out: its alerts neither hold nor clear at this issue.
- ``above_capacity``: the probability, per step and sensor, that the target reaches the
  sensor's capacity (``[h n]``, NaN for a sensor without a forecast or a capacity), such as
  ``urbanflow.serving.capacity.probability_above_capacity`` gives. The rule holds for a sensor
  when the largest probability over the window's steps reaches ``p``.
- ``drift``: each sensor's live MAE and validation MAE, both pooled over the horizon's steps
  (the mean of the per-step MAEs, the same steps on both sides). The rule holds when live MAE >
  ``factor`` × validation MAE. A sensor whose live MAE is NaN (nothing scored yet) is left out.

The value reported with each sensor (and carried into audit records and webhooks) is the
largest probability for ``below``/``above``/``above_capacity`` and the ratio live /
validation MAE for ``drift``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from urbanflow.serving.alerts.rules import (
    CapacityCondition,
    DriftCondition,
    Rule,
    ThresholdCondition,
)

ProbabilityBelow = Callable[[float], np.ndarray]
_Condition = TypeVar("_Condition", ThresholdCondition, CapacityCondition, DriftCondition)


@dataclass(frozen=True)
class Evaluation:
    """A rule's condition at one issue, per sensor it watches and could judge.

    Parameters
    ----------
    holds
        ``sensor id → whether the condition holds``; sensors without data are absent.
    values
        ``sensor id → the value that decided it`` (probability or error ratio).
    """

    holds: Mapping[str, bool]
    values: Mapping[str, float]


def window_probability(
    condition: ThresholdCondition, probability_below: np.ndarray | ProbabilityBelow
) -> np.ndarray:
    """``[n]`` largest probability over the condition's window that the value is below (or at
    or above) its threshold; NaN where every step in the window is NaN.

    Parameters
    ----------
    condition
        The rule's threshold condition.
    probability_below
        ``[h n]`` probabilities of falling below ``condition.threshold``, or a callable that
        gives them for a threshold.
    """
    below = probability_below
    if callable(below):
        below = below(condition.threshold)
    window = _first_steps(below, condition.steps)
    if condition.kind == "above":
        window = 1.0 - window
    return _window_max(window)


def _first_steps(probabilities: np.ndarray, steps: int) -> np.ndarray:
    """``[steps n]`` the first ``steps`` rows of ``[h n]`` probabilities (float64); a
    ValueError when they are not two-dimensional or have fewer rows."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[0] < steps:
        raise ValueError(f"probabilities must be [h n] with h ≥ {steps}, got {probabilities.shape}")
    return probabilities[:steps]


def _condition_of(rule: Rule, kind: type[_Condition], what: str) -> _Condition:
    """``rule.condition`` when it is a ``kind``; a TypeError naming ``what`` rule it is not."""
    condition = rule.condition
    if not isinstance(condition, kind):
        raise TypeError(f"rule {rule.name!r} is not {what} rule")
    return condition


def _window_max(window: np.ndarray) -> np.ndarray:
    """``[n]`` the largest of ``window: [k n]`` per sensor, NaN where every step is NaN."""
    out = np.full(window.shape[1], np.nan)
    known = ~np.isnan(window).all(axis=0)
    out[known] = np.nanmax(window[:, known], axis=0)
    return out


def evaluate_threshold(
    rule: Rule,
    sensor_ids: Sequence[str],
    probability_below: np.ndarray | ProbabilityBelow,
) -> Evaluation:
    """A ``below``/``above`` rule at one issue.

    Parameters
    ----------
    rule
        A rule whose condition is a :class:`ThresholdCondition`.
    sensor_ids
        ``[n]`` the ids of the probabilities' sensor axis.
    probability_below
        ``[h n]`` probabilities below the rule's threshold, or a callable giving them.
    """
    condition = _condition_of(rule, ThresholdCondition, "a below/above")
    best = window_probability(condition, probability_below)
    return _judge(rule, sensor_ids, best, lambda v: v >= condition.probability)


def evaluate_capacity(
    rule: Rule, sensor_ids: Sequence[str], probability_above: np.ndarray
) -> Evaluation:
    """An ``above_capacity`` rule at one issue.

    Parameters
    ----------
    rule
        A rule whose condition is a :class:`CapacityCondition`.
    sensor_ids
        ``[n]`` the ids of the probabilities' sensor axis.
    probability_above
        ``[h n]`` probability that each target reaches its sensor's capacity, NaN where
        unknown (no forecast, no capacity).
    """
    condition = _condition_of(rule, CapacityCondition, "an above_capacity")
    best = _window_max(_first_steps(probability_above, condition.steps))
    return _judge(rule, sensor_ids, best, lambda v: v >= condition.probability)


def evaluate_drift(
    rule: Rule,
    sensor_ids: Sequence[str],
    live_mae: np.ndarray | Sequence[float],
    validation_mae: np.ndarray | Sequence[float],
) -> Evaluation:
    """A ``drift`` rule at one issue.

    Parameters
    ----------
    rule
        A rule whose condition is a :class:`DriftCondition`.
    sensor_ids
        ``[n]`` the ids of the error arrays' sensor axis.
    live_mae
        ``[n]`` live MAE per sensor, pooled over steps; NaN where nothing was scored.
    validation_mae
        ``[n]`` validation MAE per sensor, pooled over the same steps.
    """
    condition = _condition_of(rule, DriftCondition, "a drift")
    live = np.asarray(live_mae, dtype=np.float64)
    reference = np.asarray(validation_mae, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(reference > 0, live / reference, np.where(live > 0, np.inf, 0.0))
    ratio = np.where(np.isnan(live) | np.isnan(reference), np.nan, ratio)
    return _judge(rule, sensor_ids, ratio, lambda v: v > condition.factor)


def _judge(
    rule: Rule,
    sensor_ids: Sequence[str],
    values: np.ndarray,
    test: Callable[[float], bool],
) -> Evaluation:
    if values.shape != (len(sensor_ids),):
        raise ValueError(f"expected {len(sensor_ids)} sensors, got values of shape {values.shape}")
    position = {sensor: i for i, sensor in enumerate(sensor_ids)}
    holds: dict[str, bool] = {}
    found: dict[str, float] = {}
    for sensor in rule.sensor_ids:
        i = position.get(sensor)
        if i is None or np.isnan(values[i]):
            continue
        found[sensor] = float(values[i])
        holds[sensor] = bool(test(values[i]))
    return Evaluation(holds, found)
