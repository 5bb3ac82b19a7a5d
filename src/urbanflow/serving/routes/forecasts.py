"""``GET /v1/forecasts``: the stored forecast of the newest step (or of ``issued_at``).

Until the newest step's forecast is issued, the service computes it on request (``stored``
false in the answer).

Answers are built as JSON bytes once per forecast and query, off the event loop: rebuilding a
cached all-sensor answer for every request cost ~20 ms of event-loop time (2,484 Pydantic
points; docs/benchmarks.md). An answer already built, or one sensor's (a fraction of a
millisecond), is returned from the event loop itself when the newest forecast is in memory,
before FastAPI's routing (:class:`QuickForecastReads`): handing it to a worker thread cost
more than making it, and under many clients the thread waited for the interpreter lock;
routing, parameter checks and dependencies cost several times the answer (``?sensor=`` p99
at 10,000 sensors, docs/benchmarks.md). Every other request, error included, goes to the
route.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Annotated, Any
from urllib.parse import parse_qsl

import numpy as np
import pandas as pd
from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from urbanflow.errors import ConfigError, UnknownNameError
from urbanflow.models.conformal import interval_columns
from urbanflow.serving.capacity import probability_above_capacity, utilisation
from urbanflow.serving.deps import ServiceDep
from urbanflow.serving.issued import IssuedForecast
from urbanflow.serving.live import LiveModel
from urbanflow.serving.routes.sensors import query_time
from urbanflow.serving.routes.times import local_iso
from urbanflow.serving.schemas import ErrorOut, ForecastOut

router = APIRouter(prefix="/v1/forecasts", tags=["forecasts"])

AnswerKey = tuple[int | None, str | None]
"""``(horizon, sensor)`` of a ``GET /v1/forecasts`` request (None: all)."""


@dataclass
class BuiltAnswers:
    """The answers built from one forecast, by query, and its capacity fields once made."""

    forecast: IssuedForecast
    bodies: dict[AnswerKey, bytes] = field(default_factory=dict)
    capacity: dict[str, list] | None = None  # capacity_fields(model, forecast)
    capacity_made: bool = False


class ForecastAnswers:
    """The answers already built from the service's current forecast; one per app
    (``app.state.forecast_answers``). A new forecast starts afresh."""

    def __init__(self) -> None:
        self._current: BuiltAnswers | None = None

    def _of(self, forecast: IssuedForecast) -> BuiltAnswers:
        current = self._current  # read once: a concurrent request may replace it
        if current is None or current.forecast is not forecast:
            current = BuiltAnswers(forecast)
            self._current = current
        return current

    def answer(
        self, model: LiveModel, forecast: IssuedForecast, horizon: int | None, sensor: str | None
    ) -> bytes:
        built = self._of(forecast)
        key = (horizon, sensor)
        if key not in built.bodies:
            if not built.capacity_made:  # once per forecast, for every sensor: [h n] each
                built.capacity, built.capacity_made = capacity_fields(model, forecast), True
            built.bodies[key] = forecast_answer(model, forecast, horizon, sensor, built.capacity)
        return built.bodies[key]

    def quick(
        self, model: LiveModel, forecast: IssuedForecast, horizon: int | None, sensor: str | None
    ) -> bytes | None:
        """The answer when it costs well under a millisecond (built already, or one sensor's
        without capacities to work out), else None: such an answer is made on the event loop,
        where handing it to a worker thread would cost more than making it."""
        built = self._of(forecast)
        body = built.bodies.get((horizon, sensor))
        if body is None and sensor is not None and (model.capacity is None or built.capacity_made):
            body = self.answer(model, forecast, horizon, sensor)
        return body


Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Awaitable[None],
]
QUICK_QUERY = frozenset({"sensor", "horizon"})
"""The parameters a read answered before routing may give (each once)."""


class QuickForecastReads:
    """ASGI middleware: answers ``GET /v1/forecasts`` with ``sensor`` and ``horizon`` (or
    neither) from the newest forecast in memory when :meth:`ForecastAnswers.quick` has the
    answer, the bytes the route would send; anything else goes on to the app unchanged.

    Parameters
    ----------
    app
        The ASGI app the other requests go to.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(
        self,
        scope: Message,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        body = None
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] == router.prefix:
            body = quick_answer(scope["app"].state, scope["query_string"])
        if body is None:
            await self.app(scope, receive, send)
            return
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def quick_answer(state: Any, query_string: bytes) -> bytes | None:
    """The answer of a plain one-sensor (or already built) read of the newest forecast in
    memory, else None: the route then answers, and says what is wrong with the request.

    Parameters
    ----------
    state
        The app's state: its ``service`` (none before start-up) and ``forecast_answers``.
    query_string
        The request's raw query.
    """
    service = getattr(state, "service", None)
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    query = dict(pairs)
    if service is None or len(query) < len(pairs) or not query.keys() <= QUICK_QUERY:
        return None
    model = service.model
    sensor, horizon = query.get("sensor"), query.get("horizon")
    steps = int(horizon) if horizon is not None and horizon.isascii() and horizon.isdigit() else 0
    if sensor is not None and not model.knows(sensor):
        return None
    if horizon is not None and not 1 <= steps <= model.horizon:
        return None
    forecast = service.forecast_in_memory()
    if forecast is None:
        return None
    return state.forecast_answers.quick(model, forecast, steps or None, sensor)


async def get_answers(request: Request) -> ForecastAnswers:
    return request.app.state.forecast_answers


@router.get(
    "",
    response_model=ForecastOut,
    responses={
        404: {"model": ErrorOut, "description": "unknown sensor, or no forecast issued then"},
        409: {"model": ErrorOut, "description": "not enough readings stored to forecast"},
        422: {"model": ErrorOut, "description": "horizon out of range"},
    },
)
async def get_forecasts(
    service: ServiceDep,
    answers: Annotated[ForecastAnswers, Depends(get_answers)],
    horizon: Annotated[
        int | None, Query(ge=1, description="steps ahead, 1-based (omitted: every step)")
    ] = None,
    sensor: Annotated[str | None, Query(description="one sensor id (omitted: all)")] = None,
    issued_at: Annotated[
        str | None,
        Query(description="ISO 8601 issue time of a stored forecast (omitted: the newest step)"),
    ] = None,
) -> Response:
    model = service.model
    if horizon is not None and horizon > model.horizon:
        raise ConfigError(
            f"horizon {horizon} is beyond the model's {model.horizon} steps; give 1…{model.horizon}"
        )
    if sensor is not None and not model.knows(sensor):  # checked before any work
        raise UnknownNameError(f"unknown sensor {sensor!r}; GET /v1/sensors lists them")
    if issued_at is not None:
        when = query_time(issued_at, "issued_at", model.metadata.timezone)
        body = await run_in_threadpool(
            lambda: forecast_answer(model, service.issued(when), horizon, sensor)
        )
        return Response(content=body, media_type="application/json")
    # QuickForecastReads answered the plain reads it could; the rest are built off the loop
    body = await run_in_threadpool(
        lambda: answers.answer(model, service.forecast(), horizon, sensor)
    )
    return Response(content=body, media_type="application/json")


def forecast_answer(
    model: LiveModel,
    forecast: IssuedForecast,
    horizon: int | None,
    sensor: str | None,
    capacity: dict[str, list] | None = None,
) -> bytes:
    """The ``GET /v1/forecasts`` body (``ForecastOut`` as JSON) for one step or all, one sensor
    or all; with ``capacity``, ``utilisation`` and ``p_above_capacity`` per point when the
    model's data are occupancies with capacities (``serving/capacity.py``), from ``capacity``
    (:func:`capacity_fields` of this forecast) when given, else worked out here."""
    ids = model.sensors.ids
    if horizon is not None and horizon > forecast.horizon:  # issued by a model with fewer steps
        raise ConfigError(
            f"horizon {horizon} is beyond the {forecast.horizon} steps of the forecast issued "
            f"at {local_iso(forecast.issued_at, model.metadata.timezone)}"
        )
    steps = range(1, forecast.horizon + 1) if horizon is None else [horizon]
    columns = np.arange(len(ids)) if sensor is None else np.array([model.position(sensor)])
    zone = model.metadata.timezone
    every = target_texts(forecast.issued_at, forecast.step, forecast.horizon, zone)
    targets = [every[h - 1] for h in steps]
    rows = np.array(steps) - 1
    # only the asked steps and sensors become Python floats: [steps][columns]
    values = forecast.values[np.ix_(rows, columns)].tolist()
    names = interval_columns(forecast.levels)  # lower_80, upper_80, …
    bounds = [
        bound[np.ix_(rows, columns)].tolist()  # [steps][columns] per name
        for k in range(len(forecast.levels))
        for bound in (forecast.lower[k], forecast.upper[k])
    ]
    # name -> [h][n] or [n], None without capacities
    full = capacity if capacity is not None else capacity_fields(model, forecast)

    def point(j: int, k: int, h: int) -> dict[str, object]:
        n = int(columns[j])
        row: dict[str, object] = {
            "sensor_id": ids[n],
            "target_time": targets[k],
            "horizon_steps": h,
            "value": values[k][j],
        }
        for name, bound in zip(names, bounds, strict=True):
            row[name] = bound[k][j]
        if full is not None:
            row["capacity"] = full["capacity"][n]
            row["utilisation"] = full["utilisation"][h - 1][n]
            row["p_above_capacity"] = full["p_above_capacity"][h - 1][n]
        return row

    available = forecast.available[columns].tolist()
    answer = {
        "issued_at": every[-1],
        "model": {"name": forecast.model, "version": forecast.model_version[:12]},
        "stored": forecast.stored,
        "levels": list(forecast.levels),
        "data": [
            point(j, k, h) for j in range(len(columns)) if available[j] for k, h in enumerate(steps)
        ],
        "missing": [ids[int(n)] for j, n in enumerate(columns) if not available[j]],
    }
    return json.dumps(answer, separators=(",", ":")).encode()


@lru_cache(maxsize=64)
def target_texts(
    issued_at: pd.Timestamp, step: pd.Timedelta, horizon: int, zone: str
) -> tuple[str, ...]:
    """The target times of steps ``1 … horizon`` as local ISO text, then the issue time's: made
    once per forecast, not per request (pandas takes ~0.5 ms for them; a one-sensor answer's
    whole budget is about a millisecond)."""
    stamps = pd.DatetimeIndex([issued_at + h * step for h in range(1, horizon + 1)])
    return (*local_iso(stamps, zone), local_iso(issued_at, zone))


def capacity_fields(model: LiveModel, forecast: IssuedForecast) -> dict[str, list] | None:
    """``capacity`` ``[n]``, ``utilisation`` and ``p_above_capacity`` ``[h][n]`` as JSON-ready
    lists (None for unknown: no capacity, no forecast, or no calibration for the
    probability); None when the model's data have no capacities."""
    capacity = model.capacity
    if capacity is None:
        return None
    calibration = model.calibration
    used = utilisation(forecast.values, capacity)
    if calibration is None:
        above = np.full(forecast.values.shape, np.nan)
    else:
        scale = forecast.scale if forecast.scale is not None else calibration.scale
        h = forecast.values.shape[0]
        above = probability_above_capacity(calibration, scale[:h], forecast.values, capacity)

    def listed(array: np.ndarray, digits: int) -> list:
        rounded = np.round(array, digits).astype(object)
        return np.where(np.isnan(array), None, rounded).tolist()

    return {
        "capacity": listed(capacity, 6),
        "utilisation": listed(used, 4),
        "p_above_capacity": listed(above, 4),
    }
