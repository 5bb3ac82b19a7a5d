"""A fleet replayed through a city's departures, with a rebalancing policy every step.

Each step ``t``:

1. vehicles whose trip or move ends at ``t`` become idle in their zone;
2. when the policy gives demand targets for ``t``, the rebalancing program
   (:func:`urbanflow.decisions.rebalancing.plan_moves`) moves idle vehicles; a moved vehicle
   drives empty and is idle again at its destination after its travel time;
3. the zone's requests (the city's departures at ``t``) are served by its idle vehicles, one
   each; the rest are unmet (lost, not queued);
4. each served request takes its vehicle to a destination drawn from the origin–destination
   table's row for that origin and hour of the week, where it is idle again after its travel
   time.

Travel time: the centroid distance at ``speed_kmh``, rounded up to whole steps, at least one
step (a trip inside its zone takes one step).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from urbanflow.decisions.demand import KStepDemand, k_step_demand
from urbanflow.decisions.rebalancing import DEFAULT_NEIGHBOURS, RebalancingProblem, plan_moves
from urbanflow.errors import DataError
from urbanflow.graph.builders import haversine_m

DEFAULT_SPEED_KMH = 25.0
HOURS_OF_WEEK = 168


@dataclass(frozen=True)
class FleetCity:
    """What the simulator replays.

    Parameters
    ----------
    zone_ids
        ``[n]`` the zones.
    latitude, longitude
        ``[n]`` their centroids in degrees.
    requests
        ``[T n]`` requests per step and zone (whole numbers ≥ 0).
    hour_of_week
        ``[T]`` hour of the week of each step, 0 = Monday 00:00 … 167, local time.
    destinations
        ``[168 n n]`` where a trip from each origin goes at each hour of the week (rows sum
        to 1; :func:`destination_table`).
    step_minutes
        Length of a step.
    """

    zone_ids: tuple[str, ...]
    latitude: np.ndarray
    longitude: np.ndarray
    requests: np.ndarray
    hour_of_week: np.ndarray
    destinations: np.ndarray
    step_minutes: float

    def travel_steps(self, speed_kmh: float = DEFAULT_SPEED_KMH) -> np.ndarray:
        """``[n n]`` steps from each zone to each, at least 1."""
        lat, lon = self.latitude, self.longitude
        km = haversine_m(lat[:, None], lon[:, None], lat[None, :], lon[None, :]) / 1000.0
        hours = km / speed_kmh
        return np.maximum(np.ceil(hours * 60.0 / self.step_minutes - 1e-9), 1).astype(np.int64)

    def distances_km(self) -> np.ndarray:
        lat, lon = self.latitude, self.longitude
        return haversine_m(lat[:, None], lon[:, None], lat[None, :], lon[None, :]) / 1000.0


def destination_table(od: pd.DataFrame, zone_ids: tuple[str, ...]) -> np.ndarray:
    """``[168 n n]`` destination shares per hour of the week and origin from an OD table
    ``origin_zone, destination_zone, hour_of_week, trips``. An origin without trips at an hour
    uses its trips of every hour; an origin without any trip keeps its vehicle in the zone.

    Parameters
    ----------
    od
        The table (``od.parquet`` of ``urbanflow datasets from-trips``).
    zone_ids
        The zones, in the order of the arrays; trips to or from other zones are left out.
    """
    missing = {"origin_zone", "destination_zone", "hour_of_week", "trips"} - set(od.columns)
    if missing:
        raise DataError(f"the OD table lacks the column(s) {', '.join(sorted(missing))}")
    n = len(zone_ids)
    index = {zone: i for i, zone in enumerate(zone_ids)}
    origin = od["origin_zone"].astype(str).map(index)
    destination = od["destination_zone"].astype(str).map(index)
    keep = origin.notna() & destination.notna()
    counts = np.zeros((HOURS_OF_WEEK, n, n))
    np.add.at(
        counts,
        (
            od["hour_of_week"][keep].to_numpy(np.int64),
            origin[keep].to_numpy(np.int64),
            destination[keep].to_numpy(np.int64),
        ),
        od["trips"][keep].to_numpy(np.float64),
    )
    every_hour = counts.sum(axis=0)  # [n n]
    every_hour[every_hour.sum(axis=1) == 0] = np.eye(n)[every_hour.sum(axis=1) == 0]
    empty = counts.sum(axis=2) == 0  # [168 n]
    counts[empty] = np.broadcast_to(every_hour, counts.shape)[empty]
    return counts / counts.sum(axis=2, keepdims=True)


@dataclass(frozen=True)
class SimulationResult:
    """What a replay counted.

    Parameters
    ----------
    requests
        Requests in all.
    unmet
        Requests no idle vehicle served.
    empty_km
        Kilometres driven empty by rebalancing moves.
    vehicles_moved
        Rebalancing moves, counted per vehicle.
    solver_seconds
        ``[s]`` time of each rebalancing solve (empty without a policy).
    """

    requests: int
    unmet: int
    empty_km: float
    vehicles_moved: int
    solver_seconds: np.ndarray

    @property
    def unmet_share(self) -> float:
        return self.unmet / self.requests if self.requests else 0.0


def place_fleet(fleet: int, weights: np.ndarray) -> np.ndarray:
    """``[n]`` ``fleet`` vehicles shared in proportion to ``weights`` (largest remainders).

    Parameters
    ----------
    fleet
        Vehicles in all, ≥ 0.
    weights
        ``[n]`` non-negative weights, not all 0.
    """
    weights = np.asarray(weights, dtype=np.float64)
    share = fleet * weights / weights.sum()
    placed = np.floor(share).astype(np.int64)
    left = fleet - int(placed.sum())
    if left:
        placed[np.argsort(-(share - placed), kind="stable")[:left]] += 1
    return placed


def simulate(
    city: FleetCity,
    initial: np.ndarray,
    targets: np.ndarray | None,
    seed: int,
    speed_kmh: float = DEFAULT_SPEED_KMH,
    neighbours: int = DEFAULT_NEIGHBOURS,
    incoming_steps: int = 0,
    means: np.ndarray | None = None,
    value_km: float | None = None,
) -> SimulationResult:
    """Replay ``city`` with the vehicles ``initial`` idle at the start.

    Parameters
    ----------
    city
        Requests, destinations and zones.
    initial
        ``[n]`` idle vehicles per zone at the first step.
    targets
        ``[T n]`` the demand target of each zone at each step (the policy), or None: no
        rebalancing.
    seed
        Seed of the destination draws.
    speed_kmh
        Travel speed of trips and moves (default 25 km/h).
    neighbours
        Moves go to the ``neighbours`` nearest zones (default 10).
    incoming_steps
        Vehicles that become idle in a zone within this many steps after ``t`` count towards
        its target at ``t`` (a target of K steps: K − 1); default 0: only the idle ones.
    means
        ``[T n]`` the forecast mean of each zone's K-step departures (Poisson), for
        ``value_km``.
    value_km
        Empty km one expected departure served is worth (``plan_moves``); None (the
        default): targets are covered whatever the distance.
    """
    steps, n = city.requests.shape
    travel = city.travel_steps(speed_kmh)
    distances = city.distances_km()
    horizon = steps + int(travel.max()) + 1
    arriving = np.zeros((horizon, n), dtype=np.int64)
    idle = np.asarray(initial, dtype=np.int64).copy()
    rng = np.random.default_rng(seed)
    unmet = 0
    empty_km = 0.0
    moved = 0
    solves: list[float] = []
    for t in range(steps):
        idle += arriving[t]
        if targets is not None:
            incoming = arriving[t + 1 : t + 1 + incoming_steps].sum(axis=0)
            plan = plan_moves(
                RebalancingProblem(
                    city.zone_ids,
                    city.latitude,
                    city.longitude,
                    idle,
                    targets[t],
                    neighbours,
                    incoming=incoming,
                ),
                None if means is None else KStepDemand(means[t]),
                value_km,
            )
            solves.append(plan.solver_seconds)
            if plan.vehicles.size:
                np.subtract.at(idle, plan.sources, plan.vehicles)
                np.add.at(
                    arriving, (t + travel[plan.sources, plan.targets], plan.targets), plan.vehicles
                )
                empty_km += float((plan.vehicles * distances[plan.sources, plan.targets]).sum())
                moved += int(plan.vehicles.sum())
        wanted = city.requests[t]
        served = np.minimum(idle, wanted)
        unmet += int((wanted - served).sum())
        idle -= served
        shares = city.destinations[city.hour_of_week[t]]
        for origin in np.flatnonzero(served):
            ends = rng.multinomial(served[origin], shares[origin])
            going = np.flatnonzero(ends)
            np.add.at(arriving, (t + travel[origin, going], going), ends[going])
    return SimulationResult(
        requests=int(city.requests.sum()),
        unmet=unmet,
        empty_km=empty_km,
        vehicles_moved=moved,
        solver_seconds=np.asarray(solves),
    )


def smallest_fleet(
    city: FleetCity, weights: np.ndarray, unmet_share: float, seed: int, **options
) -> int:
    """The smallest fleet, placed by ``weights``, with which no rebalancing leaves at most
    ``unmet_share`` of the requests unmet (bisection; unmet falls as the fleet grows, up to
    the noise of the destination draws).

    Parameters
    ----------
    city
        The city replayed.
    weights
        ``[n]`` how the fleet is placed at the start (:func:`place_fleet`).
    unmet_share
        The share of requests left unmet allowed, e.g. 0.2.
    seed
        Seed of the destination draws.
    options
        ``speed_kmh`` for :func:`simulate`.
    """

    def share(fleet: int) -> float:
        return simulate(city, place_fleet(fleet, weights), None, seed, **options).unmet_share

    low, high = 0, max(1, int(city.requests.max(axis=0).sum()))
    while share(high) > unmet_share:
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        if share(middle) <= unmet_share:
            high = middle
        else:
            low = middle
    return high


def k_step_targets(forecasts: np.ndarray, steps: int, quantile: float) -> np.ndarray:
    """``[T n]`` demand targets from forecasts ``[T H n]`` issued before each step: the
    ``quantile`` of the Poisson sum of the first ``steps`` steps (``decisions.demand``).

    Parameters
    ----------
    forecasts
        ``[T H n]`` forecast means; row ``t`` forecasts steps ``t … t+H-1``.
    steps
        ``K`` ≤ H.
    quantile
        In (0, 1).
    """
    out = np.zeros((forecasts.shape[0], forecasts.shape[2]), dtype=np.int64)
    for t in range(forecasts.shape[0]):
        out[t] = k_step_demand(forecasts[t, :steps]).quantile(quantile)
    return out


def hours_of_week(timestamps: pd.DatetimeIndex) -> np.ndarray:
    """``[T]`` hour of the week, Monday 00:00 = 0, of local timestamps."""
    return (timestamps.day_of_week * 24 + timestamps.hour).to_numpy(np.int64)
