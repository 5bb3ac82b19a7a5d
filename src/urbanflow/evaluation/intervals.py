"""Conformal intervals of a fitted model under a plan: calibration and replay.

Calibration uses the validation samples' residuals whose target readings lie before the first
test sample; the online update then replays every sample from there to the last test sample
in time order (``urbanflow.models.conformal``), so a test interval uses only readings that
would have arrived before it was issued.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from urbanflow.data.dataset import CityDataset
from urbanflow.data.windows import batches
from urbanflow.evaluation.protocol import EvaluationPlan
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
    model: Forecaster,
    dataset: CityDataset,
    plan: EvaluationPlan,
    forecasts: Iterable[tuple[np.ndarray, np.ndarray]] | None = None,
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
    forecasts
        ``(times, forecasts)`` batches of the validation samples when the caller makes them
        anyway (``score_fitted`` scores them on the way); read only when a calibration is made.
        ``None`` (default): forecast here.
    """
    cutoff = int(plan.test_times.min())
    readings = dataset.readings[..., 0]
    if not can_calibrate(plan.validation_times, readings, plan.horizon, cutoff):
        return None
    cutoff_time = dataset.timestamps[min(cutoff, dataset.num_steps - 1)].isoformat()
    spread, dispersion = model.forecast_distribution()
    if forecasts is None:
        forecasts = forecast_batches(model, dataset, plan.validation_times)
    return calibrate_batches(
        forecasts,
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


def replay_intervals(
    model: Forecaster,
    dataset: CityDataset,
    plan: EvaluationPlan,
    calibration: Calibration,
    levels: Sequence[float],
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """``(times [b], forecasts [b h n], lower [b K h n], upper [b K h n])`` of the replay
    span's samples in time order, each interval issued with the residuals known at its time.

    Parameters
    ----------
    model
        The fitted forecaster.
    dataset
        The whole dataset.
    plan
        The protocol (the replay ends at its last test sample).
    calibration
        From ``calibrate_on_validation``.
    levels
        Interval levels in percent (``K`` of them).
    """
    readings = dataset.readings[..., 0]
    state = OnlineConformal(calibration, levels)
    for times, forecasts in forecast_batches(
        model, dataset, replay_span(plan, calibration), len(levels)
    ):
        lower, upper = replay_batch(state, forecasts, times, readings)
        yield times, forecasts, lower, upper


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
