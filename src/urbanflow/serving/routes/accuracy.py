"""``GET /v1/accuracy``: how the service's own forecasts did against the readings that came."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from urbanflow.serving.deps import ServiceDep
from urbanflow.serving.routes.times import local_iso
from urbanflow.serving.schemas import AccuracyOut, AccuracyPoint, ModelRef

router = APIRouter(prefix="/v1/accuracy", tags=["forecasts"])


@router.get("", response_model=AccuracyOut)
def get_accuracy(
    service: ServiceDep,
    minutes: Annotated[
        float, Query(gt=0, le=1440, description="how far back target times are scored")
    ] = 60,
) -> AccuracyOut:
    """MAE per horizon step of the stored forecasts whose target readings have arrived, beside
    the last-value forecast on the same readings, and the coverage of their intervals."""
    until, scores, _ = service.accuracy(minutes)
    model = service.model
    return AccuracyOut(
        until=None if until is None else local_iso(until, model.metadata.timezone),
        minutes=minutes,
        model=ModelRef(name=model.name, version=model.version),
        data=[
            AccuracyPoint(
                horizon_steps=s.horizon_steps,
                mae=s.mae,
                last_value_mae=s.last_value_mae,
                count=s.count,
                coverage=s.coverage,
            )
            for s in scores
        ],
    )
