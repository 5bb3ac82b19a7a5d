"""Fleet rebalancing: move idle vehicles so that each zone can serve its coming departures.

A min-cost-flow linear program, solved by HiGHS (``scipy.optimize.linprog``):

- ``x_ij ≥ 0``: vehicles moved from zone ``i`` to zone ``j``, for ``j`` among the
  ``neighbours`` (default 10) zones nearest to ``i``, at cost ``d_ij``, the haversine distance
  between their centroids in km;
- ``s_j ≥ 0``: the demand target of zone ``j`` left uncovered, at cost ``penalty`` per vehicle,
  10 × the longest move (+ 1 km), so that covering one more departure always beats the
  kilometres of any move;
- minimise ``Σ d_ij·x_ij + penalty·Σ s_j`` subject to
  ``Σ_j x_ij ≤ idle_i`` (no zone sends more vehicles than it holds) and
  ``idle_j − Σ_k x_jk + Σ_i x_ij + s_j ≥ demand_j`` (the vehicles a zone keeps and receives,
  plus its shortfall, reach its target).

The constraint matrix is that of a network flow (each move leaves one zone and enters one), so
with integer vehicles and targets every vertex of the polytope is integral and HiGHS's basic
solution is whole vehicles; the moves are rounded down after a 1e-6 tolerance, which removes
only the solver's floating-point noise and can never move more vehicles than a zone holds.
Moves are treated as instantaneous: travel times are the simulator's business
(``benchmarks/rebalancing.py``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import linprog

from urbanflow.data.dataset import CityDataset
from urbanflow.decisions.demand import (
    DEFAULT_QUANTILE,
    KStepDemand,
    check_quantile,
    k_step_demand,
    model_size,
)
from urbanflow.errors import ConfigError, DataError
from urbanflow.graph.builders import nearest_neighbours
from urbanflow.models.base import Forecaster, require_same_sensors
from urbanflow.models.forecast import issue_indices

DEFAULT_NEIGHBOURS = 10
"""Moves go from each zone to its 10 nearest zones."""

PENALTY_PER_KM = 10.0
"""The penalty per uncovered vehicle is this many times the longest move (+ 1 km)."""

PLAN_COLUMNS = ("from_zone", "to_zone", "vehicles", "distance_km")


def _whole_counts(values: Sequence[float] | np.ndarray, what: str, n: int) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (n,):
        raise DataError(f"{what} must give one count per zone ({n}); got shape {array.shape}")
    bad = ~np.isfinite(array) | (array < 0) | (array != np.round(array))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{what} must be whole numbers ≥ 0; zone {first} has {array[first]!r}; fix it"
        )
    return array.astype(np.int64)


@dataclass(frozen=True)
class RebalancingProblem:
    """Idle vehicles and demand targets per zone, and where the zones are.

    Parameters
    ----------
    zone_ids
        ``[n]`` zone ids, unique.
    latitude, longitude
        ``[n]`` centroids in degrees, finite.
    idle
        ``[n]`` idle vehicles in each zone, whole numbers ≥ 0.
    demand
        ``[n]`` the departures each zone should be able to serve (a quantile of its K-step
        forecast, ``decisions.demand``), whole numbers ≥ 0.
    neighbours
        Moves go from a zone to its ``neighbours`` nearest zones, ≥ 1 (default 10).
    incoming
        ``[n]`` vehicles on their way that will be idle in each zone in time to serve its
        target (whole numbers ≥ 0): they count towards the target but cannot be moved; None
        (the default): none.
    """

    zone_ids: tuple[str, ...]
    latitude: np.ndarray
    longitude: np.ndarray
    idle: np.ndarray
    demand: np.ndarray
    neighbours: int = DEFAULT_NEIGHBOURS
    incoming: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.zone_ids)
        if n == 0:
            raise DataError("a rebalancing problem needs at least one zone")
        if len(set(self.zone_ids)) != n:
            raise DataError("zone ids must be unique; remove the duplicated zone")
        for name in ("latitude", "longitude"):
            values = np.asarray(getattr(self, name), dtype=np.float64)
            if values.shape != (n,) or not np.isfinite(values).all():
                raise DataError(
                    f"every zone needs a finite centroid {name} ({n} zones); give the zones' "
                    "coordinates"
                )
            object.__setattr__(self, name, values)
        object.__setattr__(self, "idle", _whole_counts(self.idle, "idle vehicles", n))
        object.__setattr__(self, "demand", _whole_counts(self.demand, "demand targets", n))
        incoming = np.zeros(n) if self.incoming is None else self.incoming
        object.__setattr__(self, "incoming", _whole_counts(incoming, "incoming vehicles", n))
        if self.neighbours < 1:
            raise ConfigError(f"neighbours {self.neighbours} must be ≥ 1, e.g. 10")


@dataclass(frozen=True)
class RebalancingPlan:
    """Moves and what they leave uncovered.

    Parameters
    ----------
    zone_ids
        ``[n]`` the zones, in the order of the arrays.
    sources, targets
        ``[m]`` zone indices of each move.
    vehicles
        ``[m]`` vehicles moved, ≥ 1.
    distance_km
        ``[m]`` centroid distance of each move.
    shortfall
        ``[n]`` the demand target each zone still misses after the moves.
    expected_unmet
        ``[n]`` departures expected unserved after the moves: ``E[(D − c)⁺]`` under the
        forecast distribution when the problem came with one, else the shortfall.
    solver_seconds
        Time spent building and solving the program.
    after
        ``[n]`` idle vehicles per zone once the moves arrive (the incoming ones left out).
    target
        ``[n]`` the demand targets the plan covers.
    """

    zone_ids: tuple[str, ...]
    sources: np.ndarray
    targets: np.ndarray
    vehicles: np.ndarray
    distance_km: np.ndarray
    shortfall: np.ndarray
    expected_unmet: np.ndarray
    solver_seconds: float
    after: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, np.int64))
    target: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, np.int64))

    @property
    def vehicles_moved(self) -> int:
        return int(self.vehicles.sum())

    @property
    def empty_km(self) -> float:
        """Kilometres driven empty by the moves."""
        return float((self.vehicles * self.distance_km).sum())

    @property
    def total_expected_unmet(self) -> float:
        return float(self.expected_unmet.sum())

    def table(self) -> pd.DataFrame:
        """The moves as ``from_zone, to_zone, vehicles, distance_km``, longest first."""
        ids = np.asarray(self.zone_ids, dtype=object)
        frame = pd.DataFrame(
            {
                "from_zone": ids[self.sources],
                "to_zone": ids[self.targets],
                "vehicles": self.vehicles.astype(np.int64),
                "distance_km": np.round(self.distance_km, 3),
            },
            columns=list(PLAN_COLUMNS),
        )
        return frame.sort_values(
            ["distance_km", "from_zone", "to_zone"], ascending=[False, True, True]
        ).reset_index(drop=True)


def plan_moves(
    problem: RebalancingProblem,
    demand: KStepDemand | None = None,
    value_km: float | None = None,
) -> RebalancingPlan:
    """The cheapest moves that cover the demand targets (see the module text for the program).

    Parameters
    ----------
    problem
        Zones, idle vehicles and demand targets.
    demand
        The K-step demand distribution the targets were taken from, to report the expected
        unmet departures; None (the default): the shortfall is reported instead.
    value_km
        With ``demand``: the empty kilometres one expected departure served is worth. The
        ``u``-th vehicle of a zone's target is then worth ``value_km × P(D ≥ u)`` instead of
        the fixed penalty: a move is made only where the departures it is expected to serve
        are worth its kilometres, and never beyond the target. None (the default): every
        vehicle of a target is worth more than any move.
    """
    if value_km is not None and not value_km > 0:
        raise ConfigError(f"value_km {value_km} must be > 0: the empty km a departure is worth")
    if value_km is not None and demand is None:
        raise ConfigError("value_km needs the demand distribution the targets came from")
    started = time.perf_counter()
    n = len(problem.zone_ids)
    idle, target = problem.idle, problem.demand
    # vehicles on their way cover part of a zone's target; the program covers the rest
    need = np.maximum(target - problem.incoming, 0)
    sources = targets = np.zeros(0, np.int64)
    distances = np.zeros(0)
    if n >= 2 and (need > idle).any() and idle.any():
        neighbours, metres = nearest_neighbours(
            problem.latitude, problem.longitude, problem.neighbours
        )
        sources = np.repeat(np.arange(n), neighbours.shape[1])
        targets = neighbours.ravel()
        distances = metres.ravel() / 1000.0
        # a zone without vehicles cannot send, and a zone without demand gains nothing by
        # receiving (what it sends on is bounded by its own idle vehicles): drop those moves
        useful = (idle[sources] > 0) & (need[targets] > 0)
        sources, targets, distances = sources[useful], targets[useful], distances[useful]
        unit_costs = None
        if value_km is not None and demand is not None:
            units = np.arange(1, int(need.max()) + 1)[:, None]  # [u 1]
            worth = value_km * demand.at_least(problem.incoming[None, :] + units)  # [u n]
            unit_costs = [worth[: need[j], j] for j in range(n)]
        vehicles = _solve(sources, targets, distances, idle, need, unit_costs)
        keep = vehicles > 0
        sources, targets, distances = sources[keep], targets[keep], distances[keep]
        vehicles = vehicles[keep]
    else:
        vehicles = np.zeros(0, np.int64)
    after = idle.copy()
    np.subtract.at(after, sources, vehicles)
    np.add.at(after, targets, vehicles)
    shortfall = np.maximum(need - after, 0)
    supply = after + problem.incoming
    expected = shortfall.astype(np.float64) if demand is None else demand.expected_unmet(supply)
    return RebalancingPlan(
        zone_ids=problem.zone_ids,
        sources=sources,
        targets=targets,
        vehicles=vehicles,
        distance_km=np.asarray(distances, dtype=np.float64),
        shortfall=shortfall,
        expected_unmet=expected,
        solver_seconds=time.perf_counter() - started,
        after=after,
        target=target,
    )


def _solve(
    sources: np.ndarray,
    targets: np.ndarray,
    distances: np.ndarray,
    idle: np.ndarray,
    target: np.ndarray,
    unit_costs: list[np.ndarray] | None = None,
) -> np.ndarray:
    """``[m]`` whole vehicles on each candidate move (the module text's program).

    ``unit_costs[j]``: the cost of leaving each vehicle of zone ``j``'s target uncovered, one
    bounded shortfall column per vehicle (the LP leaves the cheapest, the last, uncovered
    first); None: one unbounded column per zone at the fixed penalty.
    """
    n, m = idle.size, sources.size
    if m == 0:
        return np.zeros(0, np.int64)
    if unit_costs is None:
        penalty = PENALTY_PER_KM * (float(distances.max()) + 1.0)
        short_zone, short_cost = np.arange(n), np.full(n, penalty)
        short_bound: tuple[float, float | None] = (0, None)
    else:
        short_zone = np.repeat(np.arange(n), [len(c) for c in unit_costs])
        short_cost = np.concatenate([np.asarray(c, dtype=np.float64) for c in unit_costs])
        short_bound = (0, 1)
    k = short_zone.size
    cost = np.concatenate([distances, short_cost])
    arcs = np.arange(m)
    outflow = sparse.csr_matrix((np.ones(m), (sources, arcs)), shape=(n, m + k))
    # coverage written as ≤: out_j − in_j − s_j ≤ idle_j − demand_j
    rows = np.concatenate([sources, targets, short_zone])
    cols = np.concatenate([arcs, arcs, m + np.arange(k)])
    values = np.concatenate([np.ones(m), -np.ones(m), -np.ones(k)])
    coverage = sparse.csr_matrix((values, (rows, cols)), shape=(n, m + k))
    result = linprog(
        cost,
        A_ub=sparse.vstack([outflow, coverage], format="csr"),
        b_ub=np.concatenate([idle, idle - target]).astype(np.float64),
        bounds=[(0, None)] * m + [short_bound] * k,
        method="highs",
    )
    if result.status != 0:  # not expected: no moves and s = demand − idle is always feasible
        raise RuntimeError(f"HiGHS did not solve the rebalancing program: {result.message}")
    return np.floor(result.x[:m] + 1e-6).astype(np.int64)


def read_fleet(path: Path | str, zone_ids: Sequence[str]) -> np.ndarray:
    """``[n]`` idle vehicles per zone from a CSV file ``zone_id,vehicles``; zones not listed
    have none.

    Parameters
    ----------
    path
        The fleet file.
    zone_ids
        The zones of the model, in its order.
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise DataError(
            f"fleet file {path} does not exist; give a CSV file zone_id,vehicles"
        ) from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DataError(f"fleet file {path} is not a CSV file zone_id,vehicles ({error})") from None
    missing = [c for c in ("zone_id", "vehicles") if c not in frame.columns]
    if missing:
        raise DataError(
            f"fleet file {path} lacks the column(s) {', '.join(missing)}; its header must be "
            "zone_id,vehicles"
        )
    return idle_vehicles(
        zip(frame["zone_id"].str.strip(), frame["vehicles"].str.strip(), strict=True),
        zone_ids,
        where=lambda row: f"fleet file {path} row {row + 2}",
    )


def idle_vehicles(pairs, zone_ids: Sequence[str], where=None) -> np.ndarray:
    """``[n]`` idle vehicles per zone from ``(zone_id, vehicles)`` pairs; unlisted zones have 0.

    Parameters
    ----------
    pairs
        ``(zone id, count)`` pairs; a count may be text (a CSV cell) or a number.
    zone_ids
        The zones of the model, in its order.
    where
        ``where(i)`` names pair ``i`` in an error (default: ``zone <id>``).
    """
    index = {zone: i for i, zone in enumerate(zone_ids)}
    idle = np.zeros(len(index), dtype=np.int64)
    seen: dict[str, str] = {}
    for row, (zone, count) in enumerate(pairs):
        zone = str(zone)
        place = where(row) if where else f"zone {zone!r}"
        if zone not in index:
            shown = ", ".join(list(index)[:5])
            raise DataError(
                f"{place}: unknown zone {zone!r}; use one of the model's zones ({shown}, …)"
            )
        if zone in seen:
            raise DataError(
                f"{place}: zone {zone!r} is listed twice (also in {seen[zone]}); list it once"
            )
        seen[zone] = place
        try:
            value = float(count)
        except (TypeError, ValueError):
            value = float("nan")
        if isinstance(count, bool) or not np.isfinite(value) or value < 0 or value != round(value):
            raise DataError(f"{place}: vehicles {count!r} must be a whole number ≥ 0")
        idle[index[zone]] = int(value)
    return idle


def forecast_means(
    model: Forecaster, dataset: CityDataset, at: str | None, steps: int
) -> np.ndarray:
    """``[K n]`` the model's forecast departures of the ``K = steps`` steps after issue time
    ``at`` (inputs end with the reading at it; None: the dataset's last step).

    Parameters
    ----------
    model
        A fitted count model whose sensors are the dataset's zones.
    dataset
        Departures per zone and step (kind ``count``).
    at
        The issue time ``T``; naive text is the dataset's time zone.
    steps
        ``K``, 1 … the model's horizon.
    """
    if dataset.kind != "count":
        raise DataError(
            f"{dataset.metadata.name} holds {dataset.kind} readings; rebalancing needs departures "
            'counted per zone and step (kind = "count")'
        )
    check_steps(steps, model.horizon)
    require_same_sensors(model.sensor_ids_, dataset, model.name)
    issue = issue_indices(dataset, model.input_len, at)
    return model.predict(dataset, issue + 1)[0, :steps].astype(np.float64)


def check_steps(steps: int, horizon: int) -> int:
    """``steps`` unless it lies outside ``1 … horizon`` (a ConfigError)."""
    if not 1 <= steps <= horizon:
        raise ConfigError(f"steps {steps} must lie in 1…{horizon}, the model's horizon")
    return steps


def plan_from_forecast(
    zone_ids: Sequence[str],
    latitude: np.ndarray,
    longitude: np.ndarray,
    idle: np.ndarray,
    means: np.ndarray,
    quantile: float = DEFAULT_QUANTILE,
    size: float | np.ndarray | None = None,
    neighbours: int = DEFAULT_NEIGHBOURS,
    value_km: float | None = None,
) -> RebalancingPlan:
    """Moves that cover the ``quantile`` of each zone's forecast K-step departures.

    Parameters
    ----------
    zone_ids, latitude, longitude
        ``[n]`` the zones and their centroids.
    idle
        ``[n]`` idle vehicles per zone.
    means
        ``[K n]`` forecast mean departures (``forecast_means``).
    quantile
        Demand target quantile, in (0, 1) (default 0.7).
    size
        Negative-binomial size of a step (one, or ``[n]``: ``demand.model_size``), or None
        (default): Poisson.
    neighbours
        Moves go to the ``neighbours`` nearest zones (default 10).
    value_km
        Empty km one expected departure served is worth (:func:`plan_moves`); None (the
        default): every vehicle of a target is worth any move.
    """
    demand = k_step_demand(means, size)
    problem = RebalancingProblem(
        zone_ids=tuple(zone_ids),
        latitude=latitude,
        longitude=longitude,
        idle=idle,
        demand=demand.quantile(quantile),
        neighbours=neighbours,
    )
    return plan_moves(problem, demand, value_km)


def rebalance(
    model: Forecaster,
    dataset: CityDataset,
    idle: np.ndarray,
    at: str | None,
    steps: int,
    quantile: float = DEFAULT_QUANTILE,
    neighbours: int = DEFAULT_NEIGHBOURS,
    value_km: float | None = None,
) -> RebalancingPlan:
    """Moves for the idle vehicles ``idle`` at issue time ``at``, covering the ``quantile`` of
    each zone's departures over the next ``steps`` steps as ``model`` forecasts them (Poisson
    steps, or negative binomial when the model learned a dispersion).

    Parameters
    ----------
    model
        A fitted count model of the dataset's zones.
    dataset
        Departures per zone and step; the zones' coordinates are their centroids.
    idle
        ``[n]`` idle vehicles per zone (``read_fleet``).
    at
        The issue time; None: the dataset's last step.
    steps
        ``K``, steps of demand to cover, 1 … the model's horizon.
    quantile
        Demand target quantile in (0, 1) (default 0.7).
    neighbours
        Moves go to the ``neighbours`` nearest zones (default 10).
    value_km
        Empty km one expected departure served is worth; None (the default): no limit.
    """
    check_quantile(quantile)
    if not dataset.sensors.has_coordinates:
        raise DataError(
            f"{dataset.metadata.name} gives no coordinates for some zones; rebalancing needs "
            "every zone's centroid (latitude, longitude in sensors.csv)"
        )
    means = forecast_means(model, dataset, at, steps)
    return plan_from_forecast(
        dataset.sensors.ids,
        dataset.sensors.latitude,
        dataset.sensors.longitude,
        idle,
        means,
        quantile,
        model_size(model),
        neighbours,
        value_km,
    )


def write_plan(plan: RebalancingPlan, path: Path | str) -> Path:
    """Write the moves as CSV ``from_zone,to_zone,vehicles,distance_km``; returns the path.

    Parameters
    ----------
    plan
        The plan to write.
    path
        A ``.csv`` file; its folder is created if missing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    plan.table().to_csv(path, index=False)
    return path
