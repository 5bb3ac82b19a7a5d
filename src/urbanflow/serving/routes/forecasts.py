"""``GET /v1/forecasts``: forecasts from the newest input window, computed on demand."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from urbanflow.errors import ConfigError, UnknownNameError
from urbanflow.serving.deps import ServiceDep
from urbanflow.serving.live import forecast_answer
from urbanflow.serving.schemas import ErrorOut, ForecastOut

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
) -> Response:
    model = service.model
    if horizon is not None and horizon > model.horizon:
        raise ConfigError(
            f"horizon {horizon} is beyond the model's {model.horizon} steps; give 1…{model.horizon}"
        )
    ids = model.sensors.ids
    if sensor is not None and sensor not in ids:  # checked before any work
        raise UnknownNameError(f"unknown sensor {sensor!r}; GET /v1/sensors lists them")
    body = await run_in_threadpool(
        lambda: forecast_answer(model, service.forecast(), horizon, sensor)
    )
    return Response(content=body, media_type="application/json")
