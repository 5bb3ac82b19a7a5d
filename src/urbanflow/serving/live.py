"""Live forecasts: a model bundle applied to the latest input window of the store.

A forecast issued at ``T`` (the newest stored reading's time) uses the readings at
``T - (L-1)·step … T`` and targets ``T + h·step`` for ``h = 1 … H``. A sensor with less than
half of its ``L`` readings in that window gets no forecast and is listed as missing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from urbanflow.data.dataset import CityDataset, DatasetMetadata, Sensors
from urbanflow.data.timegrid import parse_frequency
from urbanflow.errors import DataError, NotReadyError
from urbanflow.graph.graph import SensorGraph
from urbanflow.models.conformal import Calibration
from urbanflow.models.neural import NeuralForecaster
from urbanflow.serving.store import ReadingStore


@dataclass(frozen=True)
class LiveModel:
    """A fitted bundle and what the service needs to know about its sensors and data."""

    forecaster: NeuralForecaster
    card: dict[str, object]
    name: str
    version: str
    sensors: Sensors
    graph: SensorGraph
    metadata: DatasetMetadata
    weights_sha256: str = ""

    @classmethod
    def load(cls, model_dir: Path) -> LiveModel:
        from urbanflow.models.bundle import WEIGHTS, load_bundle

        forecaster, card = load_bundle(model_dir)
        described = card["dataset"]
        if not described.get("frequency"):
            raise DataError(
                f"{model_dir}: the card gives no data frequency; retrain with a dataset that "
                "declares one"
            )
        rows = {row["sensor_id"]: row for row in card.get("sensors", [])}
        ids = forecaster.sensor_ids_
        capacity = np.array([_number(rows.get(i, {}).get("capacity")) for i in ids])
        occupancy = described.get("kind") == "occupancy" and bool(np.isfinite(capacity).any())
        sensors = Sensors(
            ids=ids,
            latitude=np.array([_number(rows.get(i, {}).get("latitude")) for i in ids]),
            longitude=np.array([_number(rows.get(i, {}).get("longitude")) for i in ids]),
            names=tuple(str(rows.get(i, {}).get("name") or "") for i in ids),
            capacity=capacity if occupancy else None,  # only occupancy data fill a capacity
        )
        metadata = DatasetMetadata(
            name=str(described["name"]),
            quantity=str(described.get("quantity", "value")),
            unit=str(described.get("unit", "")),
            frequency=str(described["frequency"]),
            timezone=str(described.get("timezone", "UTC")),
            kind=str(described.get("kind", "")),
            country=str(described.get("country", "")),
            subdivision=str(described.get("subdivision", "")),
        )
        digest = hashlib.sha256((model_dir / WEIGHTS).read_bytes()).hexdigest()
        return cls(
            forecaster=forecaster,
            card=card,
            name=str(card["model"]),
            version=digest[:12],
            sensors=sensors,
            graph=forecaster.spec_.require_graph(),
            metadata=metadata,
            weights_sha256=digest,
        )

    @cached_property
    def step(self) -> pd.Timedelta:
        """The data's step (parsed once: parsing costs ~1 ms and a step needs it often)."""
        return parse_frequency(self.metadata.frequency)

    @cached_property
    def positions(self) -> dict[str, int]:
        """Each sensor id's column in the model's arrays (a dict: 10,000 ids looked up in
        constant time, where the tuple of ids takes linear time)."""
        return {sensor_id: n for n, sensor_id in enumerate(self.sensors.ids)}

    def knows(self, sensor_id: str) -> bool:
        """Whether ``sensor_id`` is one of the model's sensors."""
        return sensor_id in self.positions

    def position(self, sensor_id: str) -> int:
        """The column of ``sensor_id`` (a known sensor) in the model's ``[.. n]`` arrays."""
        return self.positions[sensor_id]

    @property
    def capacity(self) -> np.ndarray | None:
        """``[n]`` each sensor's capacity (NaN where the data gave none) when the bundle's data
        are occupancies with capacities; None otherwise (no utilisation is reported)."""
        return self.sensors.capacity

    @property
    def calibration(self) -> Calibration | None:
        """The bundle's conformal calibration; None for a bundle written without one."""
        return getattr(self.forecaster, "calibration_", None)

    @property
    def data_fingerprint(self) -> str:
        """The fingerprint of the data the model was trained on, from its card."""
        return str(self.card.get("dataset", {}).get("fingerprint", ""))

    @property
    def input_len(self) -> int:
        return self.forecaster.input_len

    @property
    def horizon(self) -> int:
        return self.forecaster.horizon

    def sensor_table(self) -> pd.DataFrame:
        """``sensor_id, name, latitude, longitude`` (NaN where unknown)."""
        return pd.DataFrame(
            {
                "sensor_id": list(self.sensors.ids),
                "name": list(self.sensors.names or ("",) * len(self.sensors)),
                "latitude": self.sensors.latitude,
                "longitude": self.sensors.longitude,
            }
        )


@dataclass(frozen=True)
class LiveForecast:
    """``values: [h n]`` issued at ``issued_at`` (dataset zone); ``available: [n]``;
    ``latest: [n]`` the readings at ``issued_at`` (NaN: none)."""

    issued_at: pd.Timestamp
    values: np.ndarray
    available: np.ndarray
    latest: np.ndarray


def input_times(model: LiveModel, issued_at: pd.Timestamp) -> pd.DatetimeIndex:
    """The ``L`` grid times (UTC) whose readings feed a forecast issued at ``issued_at``."""
    return pd.date_range(
        end=issued_at.tz_convert("UTC"), periods=model.input_len, freq=model.step
    ).as_unit("ns")


def forecast_latest(model: LiveModel, store: ReadingStore) -> LiveForecast:
    """Forecast from the newest input window in ``store``; NotReadyError when none qualifies."""
    latest = store.latest_time()
    if latest is None:
        raise NotReadyError(
            "no readings are stored yet; POST the latest readings to /v1/readings first"
        )
    forecast = forecast_steps(model, store, pd.DatetimeIndex([latest]))[0]
    if forecast is None:
        local = input_times(model, latest).tz_convert(model.metadata.timezone)
        raise NotReadyError(
            f"no sensor has half of its {model.input_len} readings from "
            f"{local[0].isoformat()} to {local[-1].isoformat()} (the newest reading's time); "
            f"POST those readings to /v1/readings"
        )
    return forecast


def forecast_steps(
    model: LiveModel, store: ReadingStore, ends: pd.DatetimeIndex
) -> list[LiveForecast | None]:
    """Forecasts issued at each of the consecutive grid steps ``ends`` (UTC), from one read of
    the store and one batch through the model; None where no sensor has half its window."""
    L = model.input_len
    times = pd.date_range(
        end=ends[-1].tz_convert("UTC"), periods=len(ends) + L - 1, freq=model.step
    ).as_unit("ns")
    block = store.window(model.sensors.ids, times)  # [len(ends) + L - 1, n]
    present = np.isfinite(block).astype(np.int64)
    counts = np.cumsum(np.vstack([np.zeros((1, block.shape[1]), np.int64), present]), axis=0)
    ends_at = np.arange(L - 1, len(times))  # row of each issue step
    available = 2 * (counts[ends_at + 1] - counts[ends_at + 1 - L]) >= L  # [s n]
    local = times.tz_convert(model.metadata.timezone)
    out: list[LiveForecast | None] = [None] * len(ends)
    wanted = np.flatnonzero(available.any(axis=1))
    if wanted.size:
        dataset = CityDataset(
            readings=block[..., None],
            timestamps=local,
            sensors=model.sensors,
            graph=model.graph,
            metadata=model.metadata,
        )
        values = model.forecaster.predict(dataset, ends_at[wanted] + 1)  # [s h n]
        for i, sample in enumerate(wanted):
            row = ends_at[sample]
            out[sample] = LiveForecast(
                issued_at=local[row],
                values=values[i],
                available=available[sample],
                latest=block[row],
            )
    return out


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else float("nan")
