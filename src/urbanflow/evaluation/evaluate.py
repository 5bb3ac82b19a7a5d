"""Fit a forecaster on the fitting rows and score it on validation and test samples."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from urbanflow.data.dataset import CityDataset
from urbanflow.data.windows import target_windows
from urbanflow.evaluation.intervals import (
    calibrate_on_validation,
    forecast_batches,
    replay_intervals,
    replay_span,
)
from urbanflow.evaluation.metrics import ErrorTotals, IntervalTotals, default_mape_threshold
from urbanflow.evaluation.protocol import EvaluationPlan, ScoreGroup
from urbanflow.models.base import FitProgress, Forecaster
from urbanflow.models.conformal import Calibration
from urbanflow.models.registry import make_model
from urbanflow.version import __version__

SampleProgress = Callable[[int, int], None]
"""Scoring progress: (samples forecast so far, samples in all)."""


@dataclass(frozen=True)
class HorizonScore:
    """Test metrics of one score group (one reported horizon).

    Parameters
    ----------
    label
        The group's label, e.g. ``"step 3"`` or ``"3 steps"``.
    steps
        The horizon in steps.
    minutes
        The horizon in minutes (``steps`` × the data's step).
    samples
        Sample times scored.
    metrics
        ``mae``, ``rmse``, ``mape``, ``mape_above``, ``wmape``, ``accuracy``, ``tgcn_accuracy``
        (in the unit of
        the readings where they have one; NaN when no target was present) and ``count``, the
        present targets.
    """

    label: str
    steps: int
    minutes: float
    samples: int
    metrics: dict[str, float]


@dataclass(frozen=True)
class EvaluationResult:
    """One model on one dataset under one protocol; ``to_json`` is the results file.

    Parameters
    ----------
    dataset
        Name of the dataset scored.
    model
        Name of the model (its registry name).
    plan
        The evaluation plan: protocol, split, input length and sample times.
    null_value
        The dataset's declared null value, left out of the metrics like NaN; ``None`` if it has
        none.
    unit
        Unit of the readings, and so of MAE and RMSE.
    horizons
        Test scores of each reported horizon, in the plan's order.
    average
        Test metrics pooled over every step ``1 … H`` (the plan's average group).
    validation
        The same metrics on the validation samples, steps ``1 … H`` pooled.
    train_seconds
        Wall-clock seconds of ``fit``.
    predict_seconds
        Wall-clock seconds of scoring: forecasting every validation and test sample once,
        calibrating and replaying the intervals on the way when there are any.
    parameters
        Learned numbers of the fitted model (``parameter_count()``).
    hyperparameters
        The model's constructor settings (default: empty).
    chosen
        Settings the fit chose itself, e.g. ridge's ``alpha`` by validation MAE
        (``Forecaster.chosen_hyperparameters``; default: empty).
    fingerprint
        Fingerprint of the dataset's content, to tell which data was scored (default: empty).
    levels
        Interval levels in percent whose metrics (``coverage_L``, ``width_L``,
        ``interval_score_L``, ``wis``) the horizons and average carry (default: none).
    calibration
        The conformal calibration at the first test sample (``None`` without validation
        samples); model bundles store it. Not part of ``to_json``.
    kind
        What the readings are (``level``, ``count``, ``occupancy``; default: empty, unknown).
    kind_source
        ``declared`` (in the dataset's metadata) or ``inferred`` from the readings.
    mape_threshold
        ``mape_above`` is the MAPE over targets at or above this value (default 1.0).
    """

    dataset: str
    model: str
    plan: EvaluationPlan
    null_value: float | None
    unit: str
    horizons: tuple[HorizonScore, ...]
    average: dict[str, float]
    validation: dict[str, float]
    train_seconds: float
    predict_seconds: float
    parameters: int
    hyperparameters: dict[str, object] = field(default_factory=dict)
    fingerprint: str = ""
    levels: tuple[float, ...] = ()
    calibration: Calibration | None = field(default=None, compare=False, repr=False)
    kind: str = ""
    kind_source: str = ""
    mape_threshold: float = 1.0
    chosen: dict[str, object] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        def clean(metrics: dict[str, float]) -> dict[str, float | None]:
            return {
                k: int(v) if k == "count" else (None if v != v else round(float(v), 6))
                for k, v in metrics.items()
            }

        payload: dict[str, object] = {
            "dataset": self.dataset,
            "model": self.model,
            "protocol": self.plan.protocol,
            "input_len": self.plan.input_len,
            "split": [round(s, 6) for s in self.plan.split],
            "test_samples": self.plan.test_samples,
            "null_value": self.null_value,
            "unit": self.unit,
            "kind": self.kind,
            "kind_source": self.kind_source,
            "mape_above_threshold": self.mape_threshold,
            "horizons": [
                {"steps": h.steps, "minutes": h.minutes, "samples": h.samples, **clean(h.metrics)}
                for h in self.horizons
            ],
            "average": clean(self.average),
            "validation": clean(self.validation),
            "train_seconds": round(self.train_seconds, 4),
            "predict_seconds": round(self.predict_seconds, 4),
            "parameters": self.parameters,
            "hyperparameters": self.hyperparameters,
            "chosen_hyperparameters": self.chosen,
            "dataset_fingerprint": self.fingerprint,
            "urbanflow_version": __version__,
        }
        if self.levels:
            payload["levels"] = list(self.levels)
        return payload


def validation_part(dataset: CityDataset, plan: EvaluationPlan) -> CityDataset | None:
    """The steps the validation windows cover: their sample times are exactly its windows.

    Parameters
    ----------
    dataset
        The whole dataset.
    plan
        The plan whose ``validation_times`` are covered; none: ``None`` is returned.
    """
    times = plan.validation_times
    if times.size == 0:
        return None
    return dataset.slice_steps(int(times.min()) - plan.input_len, int(times.max()) + plan.horizon)


def evaluate(
    model: Forecaster,
    dataset: CityDataset,
    plan: EvaluationPlan,
    model_name: str | None = None,
    progress: SampleProgress | None = None,
    fit_progress: FitProgress | None = None,
    levels: Sequence[float] = (),
    mape_threshold: float | None = None,
    calibrate: bool = False,
) -> EvaluationResult:
    """Fit ``model`` on steps ``[0, plan.fit_stop)`` only, then score held-out samples.

    The model also receives the validation windows (for early stopping), never test data.

    Parameters
    ----------
    model
        An unfitted forecaster built for ``plan.input_len`` and ``plan.horizon``.
    dataset
        The whole dataset; the plan says which steps fit and which score.
    plan
        The protocol's split, input length, horizons and sample times.
    model_name
        Label of the result, the registry name; ``None`` (default): the model class's ``name``.
    progress
        Called with (samples done, samples in all) while scoring; ``None`` (default): silent.
    fit_progress
        Called with (epoch, epochs, status) while training; ``None`` (default): silent.
    levels
        Interval levels in percent to score (default: none, point metrics only).
    mape_threshold
        ``mape_above`` counts targets at or above it; ``None`` (default): the default for the
        dataset's kind (``metrics.default_mape_threshold``).
    calibrate
        Make the conformal calibration even without ``levels`` (default False).
    """
    started = time.perf_counter()
    model.fit(
        dataset.slice_steps(0, plan.fit_stop),
        validation=validation_part(dataset, plan),
        progress=fit_progress,
    )
    train_seconds = time.perf_counter() - started
    return score_fitted(
        model,
        dataset,
        plan,
        model_name,
        progress,
        train_seconds,
        levels,
        mape_threshold,
        calibrate,
    )


def evaluate_by_name(
    dataset: CityDataset,
    model_name: str,
    plan: EvaluationPlan,
    hyperparameters: Mapping[str, object] | None = None,
    progress: SampleProgress | None = None,
    fit_progress: FitProgress | None = None,
    levels: Sequence[float] = (),
    mape_threshold: float | None = None,
    calibrate: bool = False,
) -> tuple[EvaluationResult, Forecaster]:
    """Make the registry model ``model_name`` for ``plan``, then ``evaluate`` it.

    Parameters
    ----------
    dataset
        The whole dataset; the plan says which steps fit and which score.
    model_name
        A registered model name (``urbanflow models``).
    plan
        The protocol's split, input length, horizons and sample times.
    hyperparameters
        Overrides of the name's presets (e.g. ``max_epochs``, ``seed``).
    progress
        Called with (samples done, samples in all) while scoring.
    fit_progress
        Called with (epoch, epochs, status) while training.
    levels
        Interval levels in percent to score (default: none).
    mape_threshold
        ``mape_above`` threshold; ``None`` (default): the default for the dataset's kind.
    calibrate
        Make the conformal calibration even without ``levels`` (default False).

    Returns the result and the fitted model.
    """
    model = make_model(
        model_name, input_len=plan.input_len, horizon=plan.horizon, **(hyperparameters or {})
    )
    result = evaluate(
        model, dataset, plan, model_name, progress, fit_progress, levels, mape_threshold, calibrate
    )
    return result, model


def score_fitted(
    model: Forecaster,
    dataset: CityDataset,
    plan: EvaluationPlan,
    model_name: str | None = None,
    progress: SampleProgress | None = None,
    train_seconds: float = 0.0,
    levels: Sequence[float] = (),
    mape_threshold: float | None = None,
    calibrate: bool = False,
) -> EvaluationResult:
    """Score a fitted ``model`` on the plan's validation and test samples.

    Each sample is forecast once: the validation forecasts are scored and calibrate the
    intervals, then the test part's forecasts (the replay span's, with intervals) are scored
    as points and as intervals.

    Parameters
    ----------
    model
        A forecaster already fitted on steps ``[0, plan.fit_stop)``.
    dataset
        The whole dataset.
    plan
        The protocol's validation and test sample times and score groups.
    model_name
        Label of the result; ``None`` (default): the model class's ``name``.
    progress
        Called with (samples done, samples in all) while scoring; ``None`` (default): silent.
    train_seconds
        Seconds the fit took, recorded on the result (default 0.0).
    levels
        Interval levels in percent to score (default: none). The conformal calibration is
        made when there are levels (or ``calibrate``) and the plan's validation samples allow.
    mape_threshold
        ``mape_above`` counts targets at or above it; ``None`` (default): the default for the
        dataset's kind (``metrics.default_mape_threshold``).
    calibrate
        Make the conformal calibration (``result.calibration``, which bundles store) even
        without ``levels`` (default False: ``--levels none`` calibrates nothing).
    """
    if mape_threshold is None:
        mape_threshold = default_mape_threshold(dataset.kind)
    validation = ErrorTotals(plan.horizon, mape_threshold)
    groups = (*plan.test_groups, plan.average)
    points = [ErrorTotals(max(g.steps), mape_threshold) for g in groups]
    counter = SampleCounter(progress, plan.validation_times.size + plan.test_times.size)
    started = time.perf_counter()
    # one pass over the validation samples scores them and (when asked) calibrates on them
    validation_batches = scored_validation(model, dataset, plan, validation, counter)
    calibration = None
    if levels or calibrate:
        calibration = calibrate_on_validation(model, dataset, plan, validation_batches)
    for _ in validation_batches:  # what the calibration did not read: all or nothing
        pass
    # one pass over the test samples scores points and, with a calibration, intervals
    bounds = None
    if levels and calibration is not None:
        bounds = [IntervalTotals(tuple(levels), max(g.steps)) for g in groups]
        test_batches = replay_intervals(model, dataset, plan, calibration, levels)
        counter.total = counter.done + replay_span(plan, calibration).size
    else:
        test_batches = (
            (times, forecasts, None, None)
            for times, forecasts in forecast_batches(model, dataset, plan.test_times)
        )
    for times, forecasts, lower, upper in test_batches:
        add_test_batch(dataset, groups, points, bounds, times, forecasts, lower, upper)
        counter.add(times.size)
    predict_seconds = time.perf_counter() - started

    count = len(plan.test_groups)
    metrics = [t.pooled(g.steps) for g, t in zip(groups, points, strict=True)]
    metrics.append(validation.pooled(range(1, plan.horizon + 1)))
    if bounds is not None:
        for point, interval, group in zip(metrics, bounds, groups, strict=False):
            point.update(interval.pooled(group.steps))
    minutes = dataset.step.total_seconds() / 60
    scores = tuple(
        HorizonScore(g.label, g.horizon_steps, g.horizon_steps * minutes, int(g.times.size), m)
        for g, m in zip(plan.test_groups, metrics, strict=False)
    )
    return EvaluationResult(
        dataset=dataset.metadata.name,
        model=model_name or model.name,
        plan=plan,
        null_value=dataset.metadata.null_value,
        unit=dataset.metadata.unit,
        horizons=scores,
        average=metrics[count],
        validation=metrics[count + 1],
        train_seconds=train_seconds,
        predict_seconds=predict_seconds,
        parameters=model.parameter_count(),
        hyperparameters=model.hyperparameters(),
        fingerprint=dataset.fingerprint,
        levels=tuple(levels) if calibration is not None else (),
        calibration=calibration,
        kind=dataset.kind,
        kind_source=dataset.kind_source,
        mape_threshold=float(mape_threshold),
        chosen=model.chosen_hyperparameters(),
    )


@dataclass
class SampleCounter:
    """Samples forecast while scoring, reported to a progress callback as they grow.

    Parameters
    ----------
    progress
        Called with (samples done, samples in all) after each batch; ``None``: silent.
    total
        Samples in all (it may be revised once the test pass is known).
    done
        Samples forecast so far (default 0).
    """

    progress: SampleProgress | None
    total: int
    done: int = 0

    def add(self, samples: int) -> None:
        """Count ``samples`` more and report.

        Parameters
        ----------
        samples
            Samples of the batch just forecast.
        """
        self.done += samples
        if self.progress:
            self.progress(self.done, self.total)


def scored_validation(
    model: Forecaster,
    dataset: CityDataset,
    plan: EvaluationPlan,
    totals: ErrorTotals,
    counter: SampleCounter,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(times, forecasts)`` of the plan's validation samples, each batch added to ``totals``
    (all ``plan.horizon`` steps) as it passes, for a calibration to read the same forecasts.

    Parameters
    ----------
    model
        The fitted forecaster.
    dataset
        The whole dataset.
    plan
        Its validation samples are forecast.
    totals
        Receives the validation errors.
    counter
        Counts the samples forecast.
    """
    for times, forecasts in forecast_batches(model, dataset, plan.validation_times):
        targets = target_windows(dataset.readings, times, plan.horizon)
        totals.add(targets, forecasts, dataset.metadata.null_value)
        counter.add(times.size)
        yield times, forecasts


def add_test_batch(
    dataset: CityDataset,
    groups: Sequence[ScoreGroup],
    points: Sequence[ErrorTotals],
    bounds: Sequence[IntervalTotals] | None,
    times: np.ndarray,
    forecasts: np.ndarray,
    lower: np.ndarray | None,
    upper: np.ndarray | None,
) -> None:
    """Add one batch of forecasts (and intervals) to the totals of the groups whose samples
    it holds.

    Parameters
    ----------
    dataset
        The whole dataset (the targets).
    groups
        The score groups (test horizons, average).
    points
        One point-error total per group.
    bounds
        One interval total per group, or ``None`` without intervals.
    times
        ``[b]`` sample times of the batch.
    forecasts
        ``[b h n]`` their forecasts.
    lower, upper
        ``[b K h n]`` their interval bounds, or ``None``.
    """
    null = dataset.metadata.null_value
    for position, group in enumerate(groups):
        scored = np.isin(times, group.times)
        if not scored.any():
            continue
        rows = slice(None) if scored.all() else scored  # a slice copies nothing
        steps = points[position].steps
        targets = target_windows(dataset.readings, times[rows], steps)
        forecast = forecasts[rows, :steps]
        points[position].add(targets, forecast, null)
        if bounds is not None and lower is not None and upper is not None:
            low, high = lower[rows][:, :, :steps], upper[rows][:, :, :steps]
            bounds[position].add(targets, forecast, low, high, null)
