"""``GET /v1/forecasts``: forecasts from the newest input window, computed on demand."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import pandas as pd
from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from urbanflow.errors import ConfigError, UnknownNameError
from urbanflow.serving.deps import ServiceDep
from urbanflow.serving.live import local_iso
from urbanflow.serving.schemas import ErrorOut, ForecastOut, ForecastPoint, ModelRef

router = APIRouter(prefix="/v1/forecasts", tags=["forecasts"])


@router.get(
    "",
    response_model=ForecastOut,
    responses={
        404: {"model": ErrorOut, "description": "unknown sensor"},
        409: {"model": ErrorOut, "description": "not enough readings stored to forecast"},
        422: {"model": ErrorOut, "description": "horizon out of range"},
    },
)
async def get_forecasts(
    service: ServiceDep,
    horizon: Annotated[
        int | None, Query(ge=1, description="steps ahead, 1-based (omitted: every step)")
    ] = None,
    sensor: Annotated[str | None, Query(description="one sensor id (omitted: all)")] = None,
) -> ForecastOut:
    model = service.model
    if horizon is not None and horizon > model.horizon:
        raise ConfigError(
            f"horizon {horizon} is beyond the model's {model.horizon} steps; give 1…{model.horizon}"
        )
    ids = model.sensors.ids
    if sensor is not None and sensor not in ids:
        raise UnknownNameError(f"unknown sensor {sensor!r}; GET /v1/sensors lists them")
    forecast = await run_in_threadpool(service.forecast)
    steps = np.arange(1, model.horizon + 1) if horizon is None else np.array([horizon])
    columns = np.arange(len(ids)) if sensor is None else np.array([ids.index(sensor)])
    chosen = columns[forecast.available[columns]]
    targets = local_iso(
        pd.DatetimeIndex([forecast.issued_at + int(h) * model.step for h in steps]),
        model.metadata.timezone,
    )
    data = [
        ForecastPoint(
            sensor_id=ids[n],
            target_time=targets[k],
            horizon_steps=int(h),
            value=float(forecast.values[h - 1, n]),
        )
        for n in chosen
        for k, h in enumerate(steps)
    ]
    missing = [ids[n] for n in columns if not forecast.available[n]]
    return ForecastOut(
        issued_at=forecast.issued_at.isoformat(),
        model=ModelRef(name=model.name, version=model.version),
        data=data,
        missing=missing,
    )
