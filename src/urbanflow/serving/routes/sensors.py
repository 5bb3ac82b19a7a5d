"""``GET /v1/sensors`` and ``GET /v1/sensors/{id}/readings``."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import pandas as pd
from fastapi import APIRouter, Query

from urbanflow.data.timegrid import parse_local_time
from urbanflow.errors import ConfigError, UnknownNameError
from urbanflow.serving.deps import ModelDep, StoreDep
from urbanflow.serving.routes.times import local_iso
from urbanflow.serving.schemas import (
    MAX_ROWS,
    ErrorOut,
    ReadingList,
    ReadingOut,
    SensorList,
    SensorOut,
)

router = APIRouter(prefix="/v1/sensors", tags=["sensors"])


@router.get("", response_model=SensorList)
def list_sensors(model: ModelDep) -> SensorList:
    """The model's sensors with their coordinates (null where unknown)."""
    table = model.sensor_table()
    data = [
        SensorOut(
            sensor_id=row.sensor_id,
            name=row.name,
            latitude=None if np.isnan(row.latitude) else float(row.latitude),
            longitude=None if np.isnan(row.longitude) else float(row.longitude),
        )
        for row in table.itertuples()
    ]
    return SensorList(data=data, count=len(data))


@router.get(
    "/{sensor_id}/readings",
    response_model=ReadingList,
    responses={404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
def sensor_readings(
    sensor_id: str,
    model: ModelDep,
    store: StoreDep,
    start: Annotated[str | None, Query(description="ISO 8601, inclusive")] = None,
    end: Annotated[str | None, Query(description="ISO 8601, exclusive")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ROWS)] = 10_000,
) -> ReadingList:
    """Stored readings of one sensor in ``[start, end)``, oldest first."""
    if not model.knows(sensor_id):
        raise UnknownNameError(f"unknown sensor {sensor_id!r}; GET /v1/sensors lists them")
    zone = model.metadata.timezone
    first = None if start is None else query_time(start, "start", zone)
    last = None if end is None else query_time(end, "end", zone)
    if first is not None and last is not None and last < first:
        raise ConfigError(f"end {end} is before start {start}; give start ≤ end")
    frame = store.readings(sensor_id, first, last, limit)
    stamps = local_iso(pd.DatetimeIndex(frame["ts"]), zone)
    data = [
        ReadingOut(timestamp=stamp, value=float(value))
        for stamp, value in zip(stamps, frame["value"], strict=True)
    ]
    return ReadingList(data=data, count=len(data))


def query_time(text: str, name: str, timezone: str) -> pd.Timestamp:
    """One query parameter as a time (naive text: the dataset's zone)."""
    return parse_local_time(text, timezone, name)
