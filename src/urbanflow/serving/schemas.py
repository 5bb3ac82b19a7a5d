"""Request and response bodies of the service, one family per resource."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_ROWS = 100_000
"""Readings one ``POST /v1/readings`` request may carry."""


class ReadingIn(BaseModel):
    """One reading; ``value`` null means "no reading" and never overwrites a stored one."""

    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True)

    sensor_id: str = Field(min_length=1, examples=["773869"])
    timestamp: str = Field(
        description="ISO 8601; without a UTC offset it is read in the dataset's time zone",
        json_schema_extra={"format": "date-time"},
        examples=["2012-03-07T08:05:00-08:00"],
    )
    value: float | None = Field(allow_inf_nan=False, examples=[61.5])


class IngestOut(BaseModel):
    """What a committed batch did."""

    received: int = Field(description="rows in the request")
    new: int = Field(description="readings stored for the first time")
    updated: int = Field(description="stored readings whose value was corrected")
    unchanged: int = Field(description="readings already stored with the same value")
    empty: int = Field(description="rows with a null value: nothing stored or overwritten")


class SensorOut(BaseModel):
    sensor_id: str
    name: str
    latitude: float | None
    longitude: float | None


class SensorList(BaseModel):
    data: list[SensorOut]
    count: int


class EdgeOut(BaseModel):
    source: str
    target: str
    weight: float


class EdgeList(BaseModel):
    data: list[EdgeOut]
    count: int


class ReadingOut(BaseModel):
    timestamp: str = Field(description="ISO 8601 in the dataset's time zone")
    value: float


class ReadingList(BaseModel):
    data: list[ReadingOut]
    count: int


class ModelRef(BaseModel):
    name: str
    version: str = Field(description="first 12 hex digits of the weights' SHA-256")


class ForecastPoint(BaseModel):
    """One sensor and step; with intervals, also ``lower_80``, ``upper_80``, … per level; for
    occupancy data with capacities, also ``capacity``, ``utilisation``, ``p_above_capacity``."""

    model_config = ConfigDict(extra="allow")

    sensor_id: str
    target_time: str
    horizon_steps: int
    value: float
    capacity: float | None = Field(
        default=None,
        description="the sensor's capacity (occupancy data with capacities only; null: none "
        "given for this sensor)",
    )
    utilisation: float | None = Field(
        default=None, description="value / capacity (occupancy data with capacities only)"
    )
    p_above_capacity: float | None = Field(
        default=None,
        description="probability that the reading reaches or exceeds the capacity, from the "
        "conformal distribution (occupancy data with capacities and a calibration only)",
    )


class ForecastOut(BaseModel):
    issued_at: str = Field(description="time of the newest reading in the input window")
    model: ModelRef
    stored: bool = Field(
        description="true: the issued forecast, as stored; false: the newest step's forecast "
        "computed on request because it has not been issued yet"
    )
    levels: list[float] = Field(description="interval levels in percent (empty: no intervals)")
    data: list[ForecastPoint]
    missing: list[str] = Field(description="sensors with less than half of their input window")


class AccuracyPoint(BaseModel):
    horizon_steps: int
    mae: float | None = Field(description="the model's MAE; null before any score")
    last_value_mae: float | None = Field(
        description="MAE of repeating the reading at the issue time, on the same readings"
    )
    count: int = Field(description="readings scored at this horizon")
    coverage: dict[str, float | None] = Field(
        default_factory=dict,
        description="share of the scored readings inside the interval, per level ('80': …); "
        "null before any score",
    )


class AccuracyOut(BaseModel):
    until: str | None = Field(description="the newest reading's time; null: nothing stored")
    minutes: float = Field(description="target times in (until − minutes, until] are scored")
    model: ModelRef
    data: list[AccuracyPoint]


class HealthOut(BaseModel):
    status: str
    model: str
    sensors: int
    readings: int
    latest_reading_at: str | None
    revision: int = Field(
        description="grows whenever a batch adds or corrects a reading (since the server started)"
    )
    last_issued_at: str | None = Field(
        default=None, description="issue time of the newest stored forecast; null: none yet"
    )


class AlertRuleList(BaseModel):
    data: list[dict[str, Any]] = Field(
        description="the rules of `serve --alerts`, in the file's order (empty without one)"
    )
    count: int


class AlertOut(BaseModel):
    """One rule's alert at one sensor (alerts that are not inactive only)."""

    rule: str
    sensor_id: str
    state: str = Field(description="pending, firing or resolved")
    since: str | None = Field(
        description="issue time of the forecast that moved it into this state, ISO 8601 in "
        "the dataset's time zone"
    )
    value: float | None = Field(
        description="what moved it into this state: the largest probability in the window "
        "(below/above) or live MAE / validation MAE (drift)"
    )
    condition: str = Field(description="below, above, above_capacity or drift")
    threshold: float | None = Field(description="the rule's threshold (below/above)")
    within_minutes: float | None = Field(
        description="the rule's window (below/above/above_capacity)"
    )
    probability: float | None = Field(
        description="the rule's probability p (below/above/above_capacity)"
    )
    factor: float | None = Field(description="the rule's factor (drift)")


class AlertList(BaseModel):
    data: list[AlertOut]
    count: int


class RebalancingIn(BaseModel):
    """Idle vehicles per zone, and how much of the coming departures to cover."""

    model_config = ConfigDict(extra="forbid")

    idle: dict[str, int] = Field(
        description="idle vehicles per zone id; zones left out have none",
        examples=[{"Z1": 4, "Z7": 0}],
    )
    steps: int = Field(default=1, ge=1, description="K: steps of departures to cover")
    quantile: float = Field(
        default=0.7,
        gt=0,
        lt=1,
        description="each zone's target is this quantile of its forecast K-step departures",
    )
    value_km: float | None = Field(
        default=None,
        gt=0,
        description="empty km one expected departure served is worth: a vehicle of a target "
        "is moved only where the departures it is expected to serve are worth its distance "
        "(null: every vehicle of a target is worth any move)",
    )


class MoveOut(BaseModel):
    from_zone: str
    to_zone: str
    vehicles: int
    distance_km: float = Field(description="haversine distance between the zones' centroids")


class ZoneRebalancingOut(BaseModel):
    zone_id: str
    idle: int = Field(description="idle vehicles before the moves")
    after: int = Field(description="idle vehicles once the moves arrive")
    target: int = Field(description="the quantile of the zone's forecast K-step departures")
    expected_unmet: float = Field(description="departures expected unserved after the moves")


class RebalancingOut(BaseModel):
    issued_at: str = Field(description="issue time of the forecast the plan covers")
    model: ModelRef
    steps: int
    quantile: float
    moves: list[MoveOut]
    vehicles_moved: int
    empty_km: float
    expected_unmet: float = Field(description="departures expected unserved, all zones")
    solver_ms: float
    zones: list[ZoneRebalancingOut]
    missing: list[str] = Field(
        description="zones without a forecast (less than half their input window): target 0"
    )


class ErrorOut(BaseModel):
    detail: str


ModelCard = dict[str, Any]
