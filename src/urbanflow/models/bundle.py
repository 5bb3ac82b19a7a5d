"""Model bundles: a folder with ``weights.safetensors`` (never pickle) and ``card.json``.

The card says what the model is and where it came from: model name and hyperparameters,
input length, horizon, scaler, sensor ids and coordinates, the training data's fingerprint
and the steps it was fitted on, the protocol, validation and test metrics, library version,
training time.
The weights file also holds the sensor graph, so a bundle rebuilds its network on its own.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from urbanflow.data.dataset import CityDataset
from urbanflow.errors import DataError
from urbanflow.graph.graph import SensorGraph
from urbanflow.models.conformal import Calibration
from urbanflow.models.networks import NetworkSpec
from urbanflow.models.neural import NeuralForecaster
from urbanflow.training.engine import choose_device, validation_criterion
from urbanflow.training.tensors import Scaler
from urbanflow.version import __version__

CARD = "card.json"
WEIGHTS = "weights.safetensors"
FORMAT = "urbanflow-bundle"
FORMAT_VERSION = 1
_GRAPH_KEYS = ("graph.sources", "graph.targets", "graph.weights")


class EvaluatedPlan(Protocol):
    """The part of an evaluation plan a card records."""

    @property
    def fit_stop(self) -> int: ...

    @property
    def protocol(self) -> str: ...


class Evaluated(Protocol):
    """What a card records of the evaluation a model went through: an
    ``urbanflow.evaluation.evaluate.EvaluationResult`` (named here by shape only, since the
    evaluation layer sits above this one)."""

    @property
    def plan(self) -> EvaluatedPlan: ...

    @property
    def calibration(self) -> Calibration | None: ...

    def to_json(self) -> dict[str, object]: ...


def save_bundle(
    model: NeuralForecaster,
    model_name: str,
    dataset: CityDataset,
    result: Evaluated,
    directory: Path,
) -> Path:
    """Write the bundle of a model fitted and scored by ``evaluate``; returns the folder.

    Parameters
    ----------
    model
        The fitted ``NeuralForecaster`` (its network, scaler, graph and training reports are saved).
    model_name
        The registry name it was built as (``"stid"``, …), recorded on the card to rebuild it.
    dataset
        The data it was fitted and scored on; its sensors, fingerprint and metadata go on the card.
    result
        The ``EvaluationResult`` of ``evaluate``: its plan (protocol, ``fit_stop``) and metrics go
        on the card.
    directory
        Folder to write ``card.json`` and ``weights.safetensors`` into; created if missing, files in
        it replaced.
    """
    directory.mkdir(parents=True, exist_ok=True)
    graph = model.spec_.require_graph()
    tensors = {
        f"network.{k}": v.detach().cpu().contiguous()
        for k, v in model.network_.state_dict().items()
    }
    tensors.update(
        {
            "graph.sources": torch.from_numpy(np.ascontiguousarray(graph.sources)),
            "graph.targets": torch.from_numpy(np.ascontiguousarray(graph.targets)),
            "graph.weights": torch.from_numpy(np.ascontiguousarray(graph.weights)),
        }
    )
    calibration = result.calibration
    if calibration is not None:
        tensors["calibration.scores"] = torch.from_numpy(np.ascontiguousarray(calibration.scores))
        tensors["calibration.scale"] = torch.from_numpy(np.ascontiguousarray(calibration.scale))
        for name in ("dispersion", "validation_mae"):
            values = getattr(calibration, name)
            if values is not None:
                tensors[f"calibration.{name}"] = torch.from_numpy(np.ascontiguousarray(values))
    save_file(tensors, str(directory / WEIGHTS))
    card = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model_name,
        "hyperparameters": model.hyperparameters(),
        "input_len": model.input_len,
        "horizon": model.horizon,
        "steps_per_day": model.spec_.steps_per_day,
        "weekdays": model.spec_.weekdays,
        "loss": model.loss_,
        "non_negative": model.non_negative_,
        "scaler": asdict(model.scaler_),
        "sensor_ids": list(dataset.sensors.ids),
        "sensors": sensor_rows(dataset),
        "dataset": {
            "name": dataset.metadata.name,
            "fingerprint": dataset.fingerprint,
            "fit_stop": result.plan.fit_stop,
            "quantity": dataset.metadata.quantity,
            "unit": dataset.metadata.unit,
            "frequency": dataset.metadata.frequency,
            "timezone": dataset.metadata.timezone,
            "kind": dataset.kind,
            "country": dataset.metadata.country,
            "subdivision": dataset.metadata.subdivision,
        },
        "protocol": result.plan.protocol,
        "metrics": result.to_json(),
        "parameters": model.parameter_count(),
        "training": {
            "seconds": round(sum(r.seconds for r in model.training_reports_), 3),
            "members": [
                {
                    "seconds": round(r.seconds, 3),
                    "best_epoch": r.best_epoch,
                    "epochs_run": r.epochs_run,
                    "stopped_by": r.stopped_by,
                    "targets": r.targets,
                    "processes": r.processes,
                    "best_validation_score": r.best_validation_score,
                    "validation_criterion": validation_criterion(model.loss_),
                }
                for r in model.training_reports_
            ],
        },
        "calibration": None
        if calibration is None
        else {
            "method": "conformal, per step, scaled per sensor, online (models/conformal.py)",
            "cutoff": calibration.cutoff,
            "cutoff_time": calibration.cutoff_time,
            "half_life_steps": calibration.half_life_steps,
            "counts": calibration.counts,
            "spread": calibration.spread,
        },
        "urbanflow_version": __version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    (directory / CARD).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return directory


def sensor_rows(dataset: CityDataset) -> list[dict[str, object]]:
    """Id, name and coordinates (null where unknown) of each sensor, for maps; ``capacity``
    too when the data give capacities (null for a sensor without one).

    Parameters
    ----------
    dataset
        The data whose sensors are listed, in its order.
    """
    sensors = dataset.sensors
    names = sensors.names or ("",) * len(sensors)
    rows: list[dict[str, object]] = [
        {
            "sensor_id": sensor_id,
            "name": name,
            "latitude": float(lat) if np.isfinite(lat) else None,
            "longitude": float(lon) if np.isfinite(lon) else None,
        }
        for sensor_id, name, lat, lon in zip(
            sensors.ids, names, sensors.latitude, sensors.longitude, strict=True
        )
    ]
    if sensors.capacity is not None:
        for row, capacity in zip(rows, sensors.capacity, strict=True):
            row["capacity"] = float(capacity) if np.isfinite(capacity) else None
    return rows


def read_card(directory: Path) -> dict[str, object]:
    """The bundle's card, checked to be an urbanflow card this version can read.

    A missing folder or card, invalid JSON, a foreign file or a newer bundle format is a
    DataError.

    Parameters
    ----------
    directory
        A folder written by ``save_bundle``.
    """
    path = directory / CARD
    if not directory.is_dir():
        raise DataError(
            f"{directory}: no such model folder; give the --out folder of `urbanflow train`"
        )
    if not path.exists():
        raise DataError(
            f"{path}: missing; a bundle needs {CARD} and {WEIGHTS} (run `urbanflow train`)"
        )
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not valid JSON ({error}); retrain the model") from None
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        raise DataError(f"{path}: not an urbanflow model card; retrain the model")
    if card.get("format_version", 0) > FORMAT_VERSION:
        raise DataError(
            f"{path}: written by a newer urbanflow (bundle format {card.get('format_version')}); "
            "upgrade urbanflow"
        )
    return card


def load_bundle(directory: Path | str) -> tuple[NeuralForecaster, dict[str, object]]:
    """The fitted model and its card; a missing, foreign or corrupt file is a DataError.

    Parameters
    ----------
    directory
        A folder written by ``save_bundle`` (``urbanflow train --out``).
    """
    directory = Path(directory)
    card = read_card(directory)
    weights = directory / WEIGHTS
    if not weights.exists():
        raise DataError(f"{weights}: missing; the bundle is incomplete, retrain the model")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as error:
        raise DataError(f"{weights}: corrupt weights ({error}); retrain the model") from None
    if not all(key in tensors for key in _GRAPH_KEYS):
        raise DataError(f"{weights}: the sensor graph is missing; retrain the model")
    sensor_ids = tuple(str(i) for i in card["sensor_ids"])
    graph = SensorGraph(
        len(sensor_ids),
        tensors["graph.sources"].numpy(),
        tensors["graph.targets"].numpy(),
        tensors["graph.weights"].numpy(),
    )
    model = NeuralForecaster(**card["hyperparameters"])
    spec = NetworkSpec(
        num_sensors=len(sensor_ids),
        input_len=model.input_len,
        horizon=model.horizon,
        steps_per_day=int(card["steps_per_day"]),
        graph=graph,
        weekdays=bool(card.get("weekdays", True)),
    )
    model.build(
        spec,
        Scaler(**card["scaler"]),
        choose_device(),
        str(card.get("loss") or "mae"),
        bool(card.get("non_negative", False)),
    )
    state = {k.removeprefix("network."): v for k, v in tensors.items() if k.startswith("network.")}
    try:
        model.network_.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        raise DataError(
            f"{weights}: weights do not fit the {card['model']} network ({first}); retrain"
        ) from None
    model.network_.eval()
    model.sensor_ids_ = sensor_ids
    model.calibration_ = read_calibration(card, tensors)
    return model, card


def read_calibration(
    card: dict[str, object], tensors: dict[str, torch.Tensor]
) -> Calibration | None:
    """The conformal calibration a bundle stores; ``None`` for a bundle written without one.

    Parameters
    ----------
    card
        The bundle's card.
    tensors
        The bundle's weights file, loaded.
    """
    described = card.get("calibration")
    if not described or "calibration.scores" not in tensors:
        return None
    return Calibration(
        scores=tensors["calibration.scores"].numpy(),
        scale=tensors["calibration.scale"].numpy(),
        cutoff=int(described["cutoff"]),
        half_life_steps=float(described["half_life_steps"]),
        cutoff_time=str(described.get("cutoff_time", "")),
        counts=bool(described.get("counts", False)),
        spread=str(described.get("spread", "none")),
        dispersion=_optional(tensors, "calibration.dispersion"),
        validation_mae=_optional(tensors, "calibration.validation_mae"),
    )


def _optional(tensors: dict[str, torch.Tensor], key: str) -> np.ndarray | None:
    return tensors[key].numpy() if key in tensors else None
