"""Fit a forecaster on the fitting rows and score it on validation and test samples."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from urbanflow.data.dataset import CityDataset
from urbanflow.data.windows import target_windows
from urbanflow.evaluation.intervals import (
    calibrate_on_validation,
    forecast_batches,
    interval_metrics,
)
from urbanflow.evaluation.metrics import ErrorTotals, default_mape_threshold
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
        Wall-clock seconds of forecasting every validation and test sample.
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
    validation = ScoreGroup(
        "validation", plan.horizon, plan.validation_times, tuple(range(1, plan.horizon + 1))
    )
    groups = (*plan.test_groups, plan.average, validation)
    totals = [ErrorTotals(max(g.steps), mape_threshold) for g in groups]
    times = np.unique(np.concatenate([plan.test_times, plan.validation_times]))
    started = time.perf_counter()
    done = 0
    for batch, forecast in forecast_batches(model, dataset, times):
        for group, total in zip(groups, totals, strict=True):
            selected = np.isin(batch, group.times)
            if selected.any():
                steps = total.steps
                targets = target_windows(dataset.readings, batch[selected], steps)
                total.add(targets, forecast[selected, :steps], dataset.metadata.null_value)
        done += batch.size
        if progress:
            progress(done, times.size)
    predict_seconds = time.perf_counter() - started

    count = len(plan.test_groups)
    metrics = [t.pooled(g.steps) for g, t in zip(groups, totals, strict=True)]
    calibration = calibrate_on_validation(model, dataset, plan) if levels or calibrate else None
    if levels and calibration is not None:
        scored = interval_metrics(model, dataset, plan, calibration, levels, groups[: count + 1])
        for point, interval in zip(metrics, scored, strict=False):
            point.update(interval)
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
