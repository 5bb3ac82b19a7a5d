"""Conformal intervals of a fitted model under a plan, and their metrics.

Calibration uses the validation samples' residuals whose target readings lie before the first
test sample; the online update then replays every sample from there to the last test sample
in time order (``urbanflow.models.conformal``), so a test interval uses only readings that
would have arrived before it was issued.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from urbanflow.data.dataset import CityDataset
from urbanflow.evaluation.metrics import IntervalTotals
from urbanflow.evaluation.protocol import EvaluationPlan, ScoreGroup
from urbanflow.models.base import Forecaster
from urbanflow.models.conformal import (
    Calibration,
    calibrate,
    can_calibrate,
    replay_intervals,
)
from urbanflow.models.forecast import predict_samples


def calibrate_on_validation(
    model: Forecaster, dataset: CityDataset, plan: EvaluationPlan
) -> Calibration | None:
    """The calibration at the first test sample, from the validation samples' forecasts;
    ``None`` when the validation samples leave no known residual at some horizon step before
    the test part (none at all, or a part shorter than the horizon).

    Parameters
    ----------
    model
        A forecaster fitted on steps ``[0, plan.fit_stop)``.
    dataset
        The whole dataset.
    plan
        The protocol: its validation samples calibrate, its first test sample is the cutoff.
    """
    cutoff = int(plan.test_times.min())
    readings = dataset.readings[..., 0]
    if not can_calibrate(plan.validation_times, readings, plan.horizon, cutoff):
        return None
    forecasts = predict_samples(model, dataset, plan.validation_times)
    cutoff_time = dataset.timestamps[min(cutoff, dataset.num_steps - 1)].isoformat()
    spread, dispersion = model.forecast_distribution()
    return calibrate(
        forecasts,
        plan.validation_times,
        readings,
        cutoff,
        cutoff_time,
        dataset.non_negative,
        spread,
        dispersion,
    )


def replay_span(plan: EvaluationPlan, calibration: Calibration) -> np.ndarray:
    """Consecutive sample times whose forecasts the online update needs to reach the last test
    sample: from the first whose targets reach the cutoff.

    Parameters
    ----------
    plan
        The protocol.
    calibration
        Its calibration (the cutoff).
    """
    return calibration.replay_times(plan.input_len, int(plan.test_times.max()))


def interval_metrics(
    model: Forecaster,
    dataset: CityDataset,
    plan: EvaluationPlan,
    calibration: Calibration,
    levels: Sequence[float],
    groups: Sequence[ScoreGroup],
) -> list[dict[str, float]]:
    """Coverage, width, interval score per level and WIS for each score group.

    Parameters
    ----------
    model
        The fitted forecaster.
    dataset
        The whole dataset.
    plan
        The protocol.
    calibration
        From ``calibrate_on_validation``.
    levels
        Interval levels in percent.
    groups
        The score groups (test horizons, average) to report.
    """
    times = replay_span(plan, calibration)
    readings = dataset.readings[..., 0]
    forecasts = predict_samples(model, dataset, times)
    lower, upper = replay_intervals(calibration, forecasts, times, readings, levels)
    position = {int(t): i for i, t in enumerate(times)}
    results = []
    for group in groups:
        rows = np.array([position[int(t)] for t in group.times], dtype=np.int64)
        steps = max(group.steps)
        totals = IntervalTotals(tuple(levels), steps)
        target_steps = group.times[:, None] + np.arange(steps)
        targets = readings[target_steps]
        totals.add(
            targets,
            forecasts[rows, :steps],
            lower[rows][:, :, :steps],
            upper[rows][:, :, :steps],
            dataset.metadata.null_value,
        )
        results.append(totals.pooled(group.steps))
    return results
