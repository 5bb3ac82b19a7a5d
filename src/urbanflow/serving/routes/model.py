"""``GET /v1/model`` and ``GET /v1/graph``: the model the service runs and the sensor graph it
was built on."""

from __future__ import annotations

from fastapi import APIRouter

from urbanflow.serving.deps import ModelDep
from urbanflow.serving.schemas import EdgeList, EdgeOut, ModelCard

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
