"""``GET /v1/alerts/rules`` and ``GET /v1/alerts``: the rules of ``serve --alerts`` and their
current alerts (both empty when the service runs without a rules file)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from urbanflow.serving.deps import ServiceDep
from urbanflow.serving.routes.times import local_iso
from urbanflow.serving.schemas import AlertList, AlertOut, AlertRuleList

router = APIRouter(prefix="/v1/alerts", tags=["alerts"])


@router.get("/rules", response_model=AlertRuleList)
def get_rules(service: ServiceDep) -> AlertRuleList:
    """The rules as loaded and checked at start-up: name, condition and its fields, sensors,
    sensor count, ``for``, ``resolve_after`` and webhook URLs."""
    rules = [] if service.alerts is None else service.alerts.describe_rules()
    return AlertRuleList(data=rules, count=len(rules))


@router.get("", response_model=AlertList)
def get_alerts(
    service: ServiceDep,
    state: Annotated[
        Literal["pending", "firing", "resolved"] | None,
        Query(description="only alerts in this state (default: all three)"),
    ] = None,
) -> AlertList:
    """The alerts per rule and sensor that are pending, firing or resolved, by rule (in the
    file's order) and sensor id."""
    found = [] if service.alerts is None else service.alerts.alerts(state)
    zone = service.model.metadata.timezone
    data = [
        AlertOut(
            **{
                **alert,
                "since": None if alert["since"] is None else local_iso(alert["since"], zone),
            }
        )
        for alert in found
    ]
    return AlertList(data=data, count=len(data))
