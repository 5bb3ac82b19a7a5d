"""``POST /v1/rebalancing``: moves of idle vehicles that cover the forecast departures of the
next K steps (``urbanflow.decisions.rebalancing``), from the newest step's forecast.

It stores nothing, but like every POST it needs the bearer token when the server has one
(``URBANFLOW_TOKEN``): a plan moves a fleet.
"""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from urbanflow.decisions.demand import model_size
from urbanflow.decisions.rebalancing import check_steps, idle_vehicles, plan_from_forecast
from urbanflow.errors import ConfigError, DataError, UnsupportedMediaError
from urbanflow.serving.deps import ServiceDep, WriterDep
from urbanflow.serving.routes.times import local_iso
from urbanflow.serving.schemas import (
    ErrorOut,
    ModelRef,
    MoveOut,
    RebalancingIn,
    RebalancingOut,
    ZoneRebalancingOut,
)
from urbanflow.serving.service import LiveService

router = APIRouter(prefix="/v1/rebalancing", tags=["decisions"])


_BODY = {
    "requestBody": {
        "required": True,
        "description": "Idle vehicles per zone, the steps K and the quantile to cover.",
        "content": {"application/json": {"schema": RebalancingIn.model_json_schema()}},
    }
}


@router.post(
    "",
    response_model=RebalancingOut,
    dependencies=[WriterDep],
    openapi_extra=_BODY,
    responses={
        401: {"model": ErrorOut, "description": "bearer token missing or wrong"},
        409: {"model": ErrorOut, "description": "not enough readings stored to forecast"},
        415: {"model": ErrorOut, "description": "not JSON"},
        422: {
            "model": ErrorOut,
            "description": "unknown zone, a negative count, steps beyond the horizon, or a "
            "model not of departure counts",
        },
    },
)
async def post_rebalancing(request: Request, service: ServiceDep) -> RebalancingOut:
    """Moves ``from_zone, to_zone, vehicles`` that cover the ``quantile`` of each zone's
    forecast departures over the next ``steps`` steps at the least empty distance, and the
    departures expected unserved after them."""
    # the body is read here, after the token check, so that a request without the token gets
    # 401 whatever it carries (as POST /v1/readings)
    media = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if media.lower() != "application/json":
        raise UnsupportedMediaError(f"content type {media!r} is not accepted; send JSON")
    try:
        body = RebalancingIn.model_validate_json(await request.body())
    except ValidationError as error:
        raise RequestValidationError(
            [{**problem, "loc": ("body", *problem["loc"])} for problem in error.errors()]
        ) from None
    model = service.model
    if model.metadata.kind != "count":
        held = f"{model.metadata.kind} readings" if model.metadata.kind else "readings of no kind"
        raise ConfigError(
            f"the model was trained on {held}; rebalancing needs a model of departures "
            "counted per zone and step (a dataset of kind count)"
        )
    check_steps(body.steps, model.horizon)
    ids = model.sensors.ids
    idle = idle_vehicles(body.idle.items(), ids)
    if not model.sensors.has_coordinates:
        raise DataError(
            "the model's card gives no centroid for some zones; retrain it on data whose "
            "sensors.csv has every zone's latitude and longitude"
        )
    return await run_in_threadpool(
        plan_latest, service, idle, body.steps, body.quantile, body.value_km
    )


def plan_latest(
    service: LiveService,
    idle: np.ndarray,
    steps: int,
    quantile: float,
    value_km: float | None = None,
) -> RebalancingOut:
    """The answer for ``idle`` from the newest step's forecast (off the event loop)."""
    model = service.model
    forecast = service.forecast()
    if steps > forecast.horizon:  # issued by an earlier bundle with fewer steps
        raise ConfigError(f"steps {steps} is beyond the {forecast.horizon} steps forecast")
    means = np.nan_to_num(forecast.values[:steps].astype(np.float64), nan=0.0)
    means[:, ~forecast.available] = 0.0
    ids = model.sensors.ids
    plan = plan_from_forecast(
        ids,
        model.sensors.latitude,
        model.sensors.longitude,
        idle,
        means,
        quantile,
        model_size(model.forecaster),
        value_km=value_km,
    )
    table = plan.table()
    return RebalancingOut(
        issued_at=local_iso(forecast.issued_at, model.metadata.timezone),
        model=ModelRef(name=forecast.model, version=forecast.model_version[:12]),
        steps=steps,
        quantile=quantile,
        moves=[MoveOut(**row) for row in table.to_dict(orient="records")],
        vehicles_moved=plan.vehicles_moved,
        empty_km=round(plan.empty_km, 3),
        expected_unmet=round(plan.total_expected_unmet, 3),
        solver_ms=round(plan.solver_seconds * 1000, 3),
        zones=[
            ZoneRebalancingOut(
                zone_id=zone,
                idle=int(idle[n]),
                after=int(plan.after[n]),
                target=int(plan.target[n]),
                expected_unmet=round(float(plan.expected_unmet[n]), 3),
            )
            for n, zone in enumerate(ids)
        ],
        missing=[zone for n, zone in enumerate(ids) if not forecast.available[n]],
    )
