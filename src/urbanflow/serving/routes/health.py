"""``GET /health``: whether the service is up, and what its store holds."""

from __future__ import annotations

from fastapi import APIRouter

from urbanflow.serving.deps import ModelDep, ServiceDep, StoreDep
from urbanflow.serving.routes.times import local_iso
from urbanflow.serving.schemas import HealthOut

router = APIRouter(tags=["service"])


@router.get("/health", response_model=HealthOut)
def health(model: ModelDep, store: StoreDep, service: ServiceDep) -> HealthOut:
    latest = store.latest_time()
    issued = service.last_issued_at
    return HealthOut(
        status="ok",
        model=model.name,
        sensors=len(model.sensors),
        readings=store.count(),
        latest_reading_at=None if latest is None else local_iso(latest, model.metadata.timezone),
        revision=service.revision,
        last_issued_at=None if issued is None else local_iso(issued, model.metadata.timezone),
    )
