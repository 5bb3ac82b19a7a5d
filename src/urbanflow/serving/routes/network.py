"""``GET /v1/model``, ``GET /v1/graph`` and ``GET /health``: what the service runs on."""

from __future__ import annotations

from fastapi import APIRouter

from urbanflow.serving.deps import ModelDep, ServiceDep, StoreDep
from urbanflow.serving.routes.times import local_iso
from urbanflow.serving.schemas import EdgeList, EdgeOut, HealthOut, ModelCard

router = APIRouter(tags=["service"])


@router.get("/v1/model", response_model=ModelCard)
def get_model(model: ModelDep) -> ModelCard:
    """The bundle's card (name, hyperparameters, data, metrics, provenance) and its version."""
    return {**model.card, "version": model.version}


@router.get("/v1/graph", response_model=EdgeList)
def get_graph(model: ModelDep) -> EdgeList:
    """The sensor graph's directed edges, by sensor id."""
    ids, graph = model.sensors.ids, model.graph
    data = [
        EdgeOut(source=ids[s], target=ids[t], weight=float(w))
        for s, t, w in zip(graph.sources, graph.targets, graph.weights, strict=True)
    ]
    return EdgeList(data=data, count=len(data))


@router.get("/health", response_model=HealthOut)
def health(model: ModelDep, store: StoreDep, service: ServiceDep) -> HealthOut:
    latest = store.latest_time()
    return HealthOut(
        status="ok",
        model=model.name,
        sensors=len(model.sensors),
        readings=store.count(),
        latest_reading_at=None if latest is None else local_iso(latest, model.metadata.timezone),
        revision=service.revision,
    )
