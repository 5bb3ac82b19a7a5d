"""Conformal intervals of a fitted model under a plan, and their metrics.

Calibration uses the validation samples' residuals whose target readings lie before the first
test sample; the online update then replays every sample from there to the last test sample
in time order (``urbanflow.models.conformal``), so a test interval uses only readings that
would have arrived before it was issued.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from urbanflow.data.dataset import CityDataset
from urbanflow.data.windows import batches, target_windows
from urbanflow.evaluation.metrics import IntervalTotals
from urbanflow.evaluation.protocol import EvaluationPlan, ScoreGroup
from urbanflow.models.base import Forecaster
from urbanflow.models.conformal import (
    Calibration,
    OnlineConformal,
    calibrate_batches,
    can_calibrate,
    replay_batch,
)

BATCH_SIZE = 256
"""Most samples forecast at once while scoring (fewer in a large city: ``forecast_batches``)."""
FORECAST_ELEMENTS = 1 << 23
"""Most numbers in the ``[b h n]`` arrays made of one batch of forecasts while scoring (32 MB
of float32 forecasts, 64 MB of float64 bounds per level): 256 samples up to 2,700 sensors,
69 at 10,000."""


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
    cutoff_time = dataset.timestamps[min(cutoff, dataset.num_steps - 1)].isoformat()
    spread, dispersion = model.forecast_distribution()
    return calibrate_batches(
        forecast_batches(model, dataset, plan.validation_times),
        plan.validation_times.size,
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
    readings = dataset.readings[..., 0]
    state = OnlineConformal(calibration, levels)
    totals = [IntervalTotals(tuple(levels), max(group.steps)) for group in groups]
    for times, forecasts in forecast_batches(
        model, dataset, replay_span(plan, calibration), len(levels)
    ):
        lower, upper = replay_batch(state, forecasts, times, readings)
        for group, total in zip(groups, totals, strict=True):
            scored = np.isin(times, group.times)
            if scored.any():
                rows = slice(None) if scored.all() else scored  # a slice copies nothing
                steps = total.steps
                total.add(
                    target_windows(dataset.readings, times[rows], steps),
                    forecasts[rows, :steps],
                    lower[rows][:, :, :steps],
                    upper[rows][:, :, :steps],
                    dataset.metadata.null_value,
                )
    return [total.pooled(group.steps) for group, total in zip(groups, totals, strict=True)]


def forecast_batches(
    model: Forecaster, dataset: CityDataset, times: np.ndarray, copies: int = 1
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(times [b], forecasts [b h n])`` of consecutive batches of ``times``, each small enough
    that ``copies`` ``[b h n]`` arrays fit :data:`FORECAST_ELEMENTS`
    numbers (at most 256 samples): scoring memory does not grow with the sensors.

    Parameters
    ----------
    model
        A fitted forecaster.
    dataset
        The data it forecasts.
    times
        ``[s]`` sample times, in the order wanted.
    copies
        Arrays of ``[b h n]`` the caller makes of each batch, e.g. one per interval level
        (default 1).
    """
    per_sample = max(copies, 1) * model.horizon * dataset.num_sensors
    size = min(BATCH_SIZE, max(1, FORECAST_ELEMENTS // per_sample))
    for batch in batches(np.asarray(times, dtype=np.int64), size):
        yield batch, model.predict(dataset, batch)
