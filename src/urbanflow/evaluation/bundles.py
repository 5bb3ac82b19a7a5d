"""Model bundles under a protocol: train one with its test scores, or score one again.

The rules live here, not in the CLI: only trained networks are bundled (refused before any
fitting), a bundle is scored only on the sensors it was fitted on, and never on test windows
whose inputs lie inside the steps it was fitted on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from urbanflow.data.dataset import CityDataset
from urbanflow.errors import ConfigError, DataError
from urbanflow.evaluation.evaluate import (
    EvaluationResult,
    SampleProgress,
    evaluate_by_name,
    score_fitted,
)
from urbanflow.evaluation.protocol import EvaluationPlan
from urbanflow.models.base import FitProgress, require_same_sensors
from urbanflow.models.bundle import save_bundle
from urbanflow.models.neural import NeuralForecaster
from urbanflow.models.registry import model_entry
from urbanflow.training.distributed import is_main_process


def train_bundle(
    dataset: CityDataset,
    model_name: str,
    plan: EvaluationPlan,
    directory: Path,
    hyperparameters: Mapping[str, object] | None = None,
    progress: SampleProgress | None = None,
    fit_progress: FitProgress | None = None,
    levels: Sequence[float] = (),
) -> tuple[EvaluationResult, NeuralForecaster]:
    """Fit a registry network under ``plan``, score it, and write its bundle to ``directory``:
    ``evaluate_by_name`` for networks only, then ``save_bundle``. Under torchrun every rank
    trains and only rank 0 writes the bundle.

    Parameters
    ----------
    dataset
        Data to fit on (the plan's fitting steps) and to score on (its test samples).
    model_name
        A registered neural model; a baseline is refused before any fitting.
    plan
        Protocol to train and score under.
    directory
        Folder that receives ``card.json`` and ``weights.safetensors``.
    hyperparameters
        Preset overrides such as ``max_epochs`` or ``seed``.
    progress
        Scoring callback: (samples done, samples in all).
    fit_progress
        Training callback: (epoch, epochs, status line).
    levels
        Interval levels (percent) to score; the bundle stores the conformal calibration in
        any case, so that its forecasts can give any level.

    Returns the result and the fitted model.
    """
    if not model_entry(model_name).is_neural:
        raise ConfigError(
            f"{model_name} is a baseline: it has no weights to bundle; use `urbanflow evaluate`"
        )
    result, model = evaluate_by_name(
        dataset, model_name, plan, hyperparameters, progress, fit_progress, levels, calibrate=True
    )
    if is_main_process():
        save_bundle(model, model_name, dataset, result, directory)
    return result, model


def require_unseen_test(
    card: Mapping[str, object], dataset: CityDataset, plan: EvaluationPlan, label: str
) -> None:
    """A DataError when ``plan``'s test windows read steps the bundle was fitted on.

    Parameters
    ----------
    card
        The bundle's card: its ``dataset`` entry gives the fingerprint and ``fit_stop``.
    dataset
        The data to score on; another dataset than the fitted one is always allowed.
    plan
        The protocol to score under.
    label
        What to call the bundle in the message (its folder).
    """
    fitted = card["dataset"]
    fit_stop = int(fitted["fit_stop"])
    same_data = dataset.fingerprint == fitted["fingerprint"]
    if same_data and int(plan.test_times.min()) - plan.input_len < fit_stop:
        raise DataError(
            f"{label}: this protocol's test windows start inside the steps the model was "
            f"fitted on (0-{fit_stop - 1}); evaluate with the protocol it was trained under "
            f"({card['protocol']})"
        )


def rescore_bundle(
    model: NeuralForecaster,
    card: Mapping[str, object],
    dataset: CityDataset,
    plan: EvaluationPlan,
    label: str,
    progress: SampleProgress | None = None,
    levels: Sequence[float] = (),
    mape_threshold: float | None = None,
) -> EvaluationResult:
    """Score a loaded bundle again under ``plan``, after the checks that keep it honest.

    Parameters
    ----------
    model
        The fitted model of the bundle.
    card
        The bundle's card.
    dataset
        The data to score on: the model's sensors, in its order.
    plan
        The protocol to score under; its horizon must not exceed the model's.
    label
        What to call the bundle in messages (its folder).
    progress
        Called with (samples done, samples in all) while scoring.
    levels
        Interval levels in percent to score, calibrated on this plan's validation samples
        (default: none).
    mape_threshold
        ``mape_above`` threshold; ``None`` (default): the default for the dataset's kind.
    """
    require_same_sensors(model.sensor_ids_, dataset, label)
    if plan.horizon > model.horizon:
        raise DataError(f"{label}: the model forecasts {model.horizon} steps, fewer than asked")
    require_unseen_test(card, dataset, plan, label)
    return score_fitted(
        model,
        dataset,
        plan,
        str(card["model"]),
        progress,
        levels=levels,
        mape_threshold=mape_threshold,
    )
