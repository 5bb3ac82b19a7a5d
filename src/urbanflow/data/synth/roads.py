"""Synthetic road speeds: corridors with junctions, travelling rush hours, incidents, outages.

The city is a set of **corridors**: straight or gently curving one-way roads across a plane
around a fictional centre (:data:`~urbanflow.data.synth.base.FICTIONAL_CENTRE`), each with a
sensor about every ``spacing_km`` (12 to 40 sensors a corridor, so 5.5 to 20 km). Sensors are
numbered along their corridor from upstream to downstream; the **road graph** links each
sensor to the next one downstream, and corridors that cross (two sensors of different
corridors within ``junction_km``) are linked both ways at the closest pair: a junction.
Corridors that cross no other are joined to the nearest sensor of the rest, so the graph is
one connected piece.

Speeds are in km/h. Each corridor has a road class (free-flow speed 50, 70 or 100 km/h) and
each sensor its own free-flow speed around it. The day's shape is a morning (around 07:45)
and an evening (around 17:15) rush-hour dip whose bottleneck is the corridor's downstream
end: the dip reaches a sensor ``d / wave_kmh`` hours later, ``d`` its distance in km from the
downstream end (congestion travels upstream as a shockwave), and is shallower upstream. The
depth varies from day to day; at weekends the rush hours are ``weekend_factor`` as deep, with
a light midday dip instead. **Incidents** (``incidents_per_sensor_day``) cut the speed at a
sensor for 20 to 90 minutes and spread upstream to its next ``incident_hops`` neighbours,
each later by the travel time of the queue and weaker by ``incident_decay``. **Detector
outages** (``outage_share`` of sensor-days) blank runs of 1 to 6 hours (NaN). Measurement
noise is Gaussian (``noise_kmh``); a speed never goes below 3 km/h.

The readings are generated a block of time steps at a time (one week) and written as row
groups of a wide Parquet file, so memory stays near one block whatever the number of days.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from urbanflow.data.synth.base import (
    FICTIONAL_CENTRE,
    SynthResult,
    check_at_least,
    check_folder,
    check_share,
    local_days,
    plane_to_degrees,
    synthetic_label,
)
from urbanflow.data.timegrid import parse_frequency
from urbanflow.errors import ConfigError

ROAD_CLASSES_KMH = np.array([50.0, 70.0, 100.0])
ROAD_CLASS_SHARES = np.array([0.5, 0.3, 0.2])
CORRIDOR_SENSORS = (12, 40)  # sensors of a corridor, both ends included
MIN_SPEED_KMH = 3.0
BLOCK_DAYS = 7  # time steps generated and written together (one Parquet row group)


@dataclass(frozen=True)
class RoadParameters:
    """How the synthetic road city is drawn; the defaults are what the CLI uses.

    Parameters
    ----------
    sensors
        Number of sensors (≥ 2).
    days
        Number of days (≥ 1).
    frequency
        Time step: a pandas alias or ISO 8601 duration that divides a day (``5min``).
    start
        The first day, ``YYYY-MM-DD`` (default a Monday).
    timezone
        IANA zone of the city's wall clock.
    seed
        Seed of the random generator: the same parameters give the same readings.
    centre
        ``(latitude, longitude)`` of the fictional city centre.
    spacing_km
        Mean distance between neighbouring sensors of a corridor.
    junction_km
        Sensors of two corridors closer than this are linked at a junction.
    wave_kmh
        Speed at which congestion travels upstream (shockwave speed).
    morning_hour, evening_hour
        Local hour of the rush-hour minimum at a corridor's downstream end (mean over
        corridors).
    rush_depth
        ``(low, high)`` share of the free-flow speed lost at the bottom of a weekday rush
        hour, drawn per corridor and rush hour.
    weekend_factor
        Depth of the weekend rush hours relative to weekdays.
    incidents_per_sensor_day
        Expected incidents starting at a sensor on a day.
    incident_hops
        Upstream neighbours an incident spreads to.
    incident_decay
        Severity kept at each hop upstream.
    outage_share
        Share of sensor-days with a detector outage (a run of 1 to 6 hours of NaN).
    noise_kmh
        Standard deviation of the measurement noise.
    """

    sensors: int = 200
    days: int = 28
    frequency: str = "5min"
    start: str = "2026-03-02"
    timezone: str = "Europe/Berlin"
    seed: int = 0
    centre: tuple[float, float] = FICTIONAL_CENTRE
    spacing_km: float = 0.5
    junction_km: float = 0.5
    wave_kmh: float = 18.0
    morning_hour: float = 7.75
    evening_hour: float = 17.25
    rush_depth: tuple[float, float] = (0.3, 0.6)
    weekend_factor: float = 0.3
    incidents_per_sensor_day: float = 0.01
    incident_hops: int = 3
    incident_decay: float = 0.6
    outage_share: float = 0.005
    noise_kmh: float = 2.0

    def __post_init__(self) -> None:
        check_at_least(self.sensors, 2, "--sensors")
        check_at_least(self.days, 1, "--days")
        step = parse_frequency(self.frequency)
        if step < pd.Timedelta(minutes=1) or pd.Timedelta(days=1) % step != pd.Timedelta(0):
            raise ConfigError(
                f"--frequency {self.frequency} does not divide a day into whole steps of a "
                "minute or more; give one such as 1min, 5min, 15min or 1h"
            )
        for name in ("spacing_km", "junction_km", "wave_kmh"):
            check_at_least(getattr(self, name), 1e-3, name)
        for name in ("incidents_per_sensor_day", "noise_kmh", "incident_hops"):
            check_at_least(getattr(self, name), 0.0, name)
        for name in ("weekend_factor", "incident_decay", "outage_share"):
            check_share(getattr(self, name), name)
        low, high = self.rush_depth
        check_share(low, "rush_depth")
        check_share(high, "rush_depth")
        check_at_least(high, low, "rush_depth high end")

    @property
    def step(self) -> pd.Timedelta:
        """The time step."""
        return parse_frequency(self.frequency)


@dataclass(frozen=True)
class RoadNetwork:
    """The sensors and the road graph.

    Parameters
    ----------
    sensor_ids
        ``[n]`` ids (``S00001``, ...), numbered corridor by corridor, upstream first.
    corridor
        ``[n]`` corridor index of each sensor.
    x_km, y_km
        ``[n]`` kilometres east and north of the city centre.
    to_downstream_km
        ``[n]`` distance along the corridor to its downstream end.
    free_kmh
        ``[n]`` free-flow speed.
    edges
        ``source, target, distance_m, link`` (``corridor`` or ``junction``), by index.
    """

    sensor_ids: tuple[str, ...]
    corridor: np.ndarray
    x_km: np.ndarray
    y_km: np.ndarray
    to_downstream_km: np.ndarray
    free_kmh: np.ndarray
    edges: pd.DataFrame

    @property
    def upstream(self) -> np.ndarray:
        """``[n]`` index of the next sensor upstream on the same corridor, -1 at the start."""
        previous = np.arange(len(self.corridor)) - 1
        first = np.r_[True, self.corridor[1:] != self.corridor[:-1]]
        return np.where(first, -1, previous)


@dataclass(frozen=True)
class RushProfile:
    """Per-sensor rush-hour parameters and per-day depth factors.

    Parameters
    ----------
    peak_hour
        ``[2 n]`` local hour of the morning and evening minimum at each sensor.
    width_hours
        ``[2]`` standard deviation of the morning and evening dips.
    depth
        ``[2 n]`` share of free-flow speed lost at the bottom of each weekday dip.
    day_factor
        ``[days corridors]`` depth factor of each day and corridor.
    """

    peak_hour: np.ndarray
    width_hours: np.ndarray
    depth: np.ndarray
    day_factor: np.ndarray


@dataclass(frozen=True)
class SyntheticRoads:
    """Generated speeds with what produced them (for tests and summaries).

    Parameters
    ----------
    timestamps
        ``[t]`` timezone-aware time steps.
    readings
        ``[t n]`` speeds in km/h (float32; NaN during outages).
    network
        The sensors and the road graph.
    incidents
        ``sensor, start_step, steps, severity, hop, origin`` of every affected sensor.
    outages
        ``sensor, start_step, steps`` of every outage.
    """

    timestamps: pd.DatetimeIndex
    readings: np.ndarray
    network: RoadNetwork
    incidents: pd.DataFrame
    outages: pd.DataFrame


def corridor_sizes(sensors: int, rng: np.random.Generator) -> np.ndarray:
    """Sensors per corridor: 12 to 40 each (fewer when ``sensors`` is small), summing up.

    Parameters
    ----------
    sensors
        Total number of sensors.
    rng
        The random generator.
    """
    low, high = CORRIDOR_SENSORS
    sizes = rng.integers(low, high + 1, size=sensors // low + 1)
    ends = np.cumsum(sizes)
    count = int(np.searchsorted(ends, sensors)) + 1
    sizes = sizes[:count].copy()
    sizes[-1] -= int(ends[count - 1]) - sensors
    if len(sizes) > 1 and sizes[-1] < 2:  # too short to be a corridor: join the previous
        sizes[-2] += sizes[-1]
        sizes = sizes[:-1]
    return sizes


def make_network(parameters: RoadParameters, rng: np.random.Generator) -> RoadNetwork:
    """Corridors of sensors across a plane, linked downstream and at junctions.

    Parameters
    ----------
    parameters
        ``sensors``, ``spacing_km``, ``junction_km``.
    rng
        The random generator.
    """
    sizes = corridor_sizes(parameters.sensors, rng)
    count = len(sizes)
    mean_length = float(np.mean(sizes)) * parameters.spacing_km
    # corridor midpoints scattered over a disc that grows with the number of corridors, so
    # each corridor crosses a few others; directions spread over the half turn
    radius = 0.35 * mean_length * np.sqrt(count / 3.0)
    distance = radius * np.sqrt(rng.random(count))
    angle = rng.uniform(0.0, 2.0 * np.pi, count)
    heading = (np.pi * np.arange(count) / count + rng.uniform(-0.3, 0.3, count)) % np.pi
    heading = rng.permutation(heading) + np.pi * rng.integers(0, 2, count)  # either way
    bend = rng.uniform(-0.15, 0.15, count)
    road_class = rng.choice(len(ROAD_CLASSES_KMH), size=count, p=ROAD_CLASS_SHARES)

    corridor = np.repeat(np.arange(count), sizes)
    steps = rng.uniform(0.8, 1.2, parameters.sensors) * parameters.spacing_km
    first = np.r_[0, np.cumsum(sizes)[:-1]]
    steps[first] = 0.0
    along = np.cumsum(steps)
    along -= np.repeat(along[first], sizes)  # km from the corridor's upstream end
    length = along[np.r_[first[1:], parameters.sensors] - 1]
    s = along - np.repeat(length / 2, sizes)  # km from the corridor's midpoint
    c, a = corridor, heading[corridor]
    centre_x = distance[c] * np.cos(angle[c])
    centre_y = distance[c] * np.sin(angle[c])
    sideways = bend[c] * s**2 / np.maximum(length[c], 1e-9)
    x = centre_x + s * np.cos(a) - sideways * np.sin(a)
    y = centre_y + s * np.sin(a) + sideways * np.cos(a)
    to_downstream = np.repeat(length, sizes) - along
    free = ROAD_CLASSES_KMH[road_class][corridor] * rng.normal(1.0, 0.04, parameters.sensors)

    points = np.column_stack([x, y])
    source = np.flatnonzero(np.r_[corridor[1:] == corridor[:-1], False])
    target = source + 1
    links = [(source, target, "corridor")]
    pairs = cKDTree(points).query_pairs(parameters.junction_km, output_type="ndarray")
    pairs = pairs[corridor[pairs[:, 0]] != corridor[pairs[:, 1]]]
    if len(pairs):  # one junction per pair of corridors: their closest sensors
        gap = np.hypot(*(points[pairs[:, 0]] - points[pairs[:, 1]]).T)
        key = np.sort(corridor[pairs], axis=1)
        order = np.lexsort((gap, key[:, 1], key[:, 0]))
        key, pairs = key[order], pairs[order]
        keep = np.r_[True, (key[1:] != key[:-1]).any(axis=1)]
        pairs = pairs[keep]
    pairs = join_components(points, corridor, pairs)
    links.append((np.r_[pairs[:, 0], pairs[:, 1]], np.r_[pairs[:, 1], pairs[:, 0]], "junction"))
    edges = pd.concat(
        [
            pd.DataFrame(
                {
                    "source": a,
                    "target": b,
                    "distance_m": np.round(1000.0 * np.hypot(x[a] - x[b], y[a] - y[b]), 1),
                    "link": kind,
                }
            )
            for a, b, kind in links
        ],
        ignore_index=True,
    )
    ids = tuple(f"S{i + 1:05d}" for i in range(parameters.sensors))
    return RoadNetwork(ids, corridor, x, y, to_downstream, free, edges)


def join_components(points: np.ndarray, corridor: np.ndarray, junctions: np.ndarray) -> np.ndarray:
    """``junctions`` plus one link from each unconnected group of corridors to the rest.

    Parameters
    ----------
    points
        ``[n 2]`` sensor positions in km.
    corridor
        ``[n]`` corridor of each sensor.
    junctions
        ``[j 2]`` sensor pairs linked at junctions.
    """
    corridors = int(corridor.max()) + 1
    links = [junctions.reshape(-1, 2)]
    while True:
        pairs = np.concatenate(links)
        ends = corridor[pairs]
        graph = coo_matrix(
            (np.ones(len(pairs)), (ends[:, 0], ends[:, 1])), shape=(corridors, corridors)
        )
        groups, label = connected_components(graph, directed=False)
        if groups == 1:
            return pairs
        # link the group of corridor 0 to the nearest sensor outside it
        inside = label[corridor] == label[0]
        tree = cKDTree(points[~inside])
        gap, nearest = tree.query(points[inside])
        best = int(np.argmin(gap))
        links.append(
            np.array([[np.flatnonzero(inside)[best], np.flatnonzero(~inside)[nearest[best]]]])
        )


def rush_profile(
    network: RoadNetwork, parameters: RoadParameters, rng: np.random.Generator
) -> RushProfile:
    """When and how deep each sensor's rush hours are.

    Parameters
    ----------
    network
        The sensors (corridor, distance to the downstream end).
    parameters
        ``morning_hour``, ``evening_hour``, ``rush_depth``, ``wave_kmh``, ``days``.
    rng
        The random generator.
    """
    corridors = int(network.corridor.max()) + 1
    bottleneck = np.array([parameters.morning_hour, parameters.evening_hour])[:, None]
    bottleneck = bottleneck + rng.normal(0.0, 0.25, (2, corridors))
    depth = rng.uniform(*parameters.rush_depth, (2, corridors))
    length = np.zeros(corridors)
    np.maximum.at(length, network.corridor, network.to_downstream_km)
    c = network.corridor
    # shallower upstream: the full depth at the bottleneck, 60 % at the corridor's start
    fade = 1.0 - 0.4 * network.to_downstream_km / np.maximum(length[c], 1e-9)
    delay = network.to_downstream_km / parameters.wave_kmh
    day_factor = rng.lognormal(0.0, 0.15, (parameters.days + 1, corridors))
    return RushProfile(
        peak_hour=bottleneck[:, c] + delay[None, :],
        width_hours=np.array([0.75, 1.0]),
        depth=depth[:, c] * fade[None, :],
        day_factor=day_factor,
    )


def draw_incidents(
    network: RoadNetwork, parameters: RoadParameters, steps: int, rng: np.random.Generator
) -> pd.DataFrame:
    """Incidents and their spread upstream: one row per affected sensor.

    Parameters
    ----------
    network
        The sensors (for the upstream neighbours and their distances).
    parameters
        ``incidents_per_sensor_day``, ``incident_hops``, ``incident_decay``, ``wave_kmh``.
    steps
        Time steps of the whole period.
    rng
        The random generator.
    """
    step_minutes = parameters.step / pd.Timedelta(minutes=1)
    expected = parameters.incidents_per_sensor_day * parameters.sensors * parameters.days
    count = int(rng.poisson(expected))
    sensor = rng.integers(0, parameters.sensors, count)
    start = rng.integers(0, steps, count)
    minutes = rng.uniform(20.0, 90.0, count)
    severity = rng.uniform(0.5, 0.8, count)
    upstream = network.upstream
    rows = []
    at, delay, origin = sensor.copy(), np.zeros(count), np.arange(count)
    for hop in range(int(parameters.incident_hops) + 1):
        if hop:
            previous = at
            keep = upstream[previous] >= 0
            at, delay, origin = upstream[previous][keep], delay[keep], origin[keep]
            gap_km = np.hypot(
                network.x_km[at] - network.x_km[previous[keep]],
                network.y_km[at] - network.y_km[previous[keep]],
            )
            delay = delay + 60.0 * gap_km / parameters.wave_kmh
        left = minutes[origin] - delay  # the queue clears everywhere when the incident does
        shown = left >= step_minutes
        rows.append(
            pd.DataFrame(
                {
                    "sensor": at[shown],
                    "start_step": start[origin[shown]] + np.round(delay[shown] / step_minutes),
                    "steps": np.round(left[shown] / step_minutes),
                    "severity": severity[origin[shown]] * parameters.incident_decay**hop,
                    "hop": hop,
                    "origin": origin[shown],
                }
            )
        )
    table = pd.concat(rows, ignore_index=True)
    for column in ("sensor", "start_step", "steps", "hop", "origin"):
        table[column] = table[column].astype(np.int64)
    return table.sort_values(["origin", "hop"], ignore_index=True)


def draw_outages(
    parameters: RoadParameters, days_steps: np.ndarray, rng: np.random.Generator
) -> pd.DataFrame:
    """Detector outages: ``sensor, start_step, steps`` (runs of 1 to 6 hours).

    Parameters
    ----------
    parameters
        ``outage_share``, ``sensors``, ``days``.
    days_steps
        ``[days + 1]`` index of the first step of each local day (and the end).
    rng
        The random generator.
    """
    per_hour = pd.Timedelta(hours=1) / parameters.step
    count = int(rng.binomial(parameters.sensors * parameters.days, parameters.outage_share))
    cell = rng.choice(parameters.sensors * parameters.days, size=count, replace=False)
    sensor, day = cell % parameters.sensors, cell // parameters.sensors
    length = np.maximum(1, np.round(rng.uniform(1.0, 6.0, count) * per_hour)).astype(np.int64)
    start = days_steps[day] + rng.integers(0, np.diff(days_steps)[day])
    return pd.DataFrame({"sensor": sensor, "start_step": start, "steps": length})


def apply_windows(
    block: np.ndarray, first: int, table: pd.DataFrame, value: np.ndarray | None
) -> None:
    """Scale (``value``: factors) or blank (None: NaN) the rows' windows within ``block``.

    Parameters
    ----------
    block
        ``[t n]`` readings of steps ``first .. first + t``, changed in place.
    first
        Index of the block's first step.
    table
        ``sensor, start_step, steps`` windows.
    value
        ``[rows]`` factor of each window, or None for NaN.
    """
    begin = np.maximum(table["start_step"].to_numpy() - first, 0)
    end = np.minimum(table["start_step"].to_numpy() + table["steps"].to_numpy() - first, len(block))
    sensors = table["sensor"].to_numpy()
    for row in np.flatnonzero(end > begin):
        window = block[begin[row] : end[row], sensors[row]]
        if value is None:
            window[:] = np.nan
        else:
            window *= value[row]


@dataclass(frozen=True)
class RoadPlan:
    """Everything drawn before the readings: the network, the time line, the events.

    Parameters
    ----------
    parameters
        What it was drawn with.
    network
        The sensors and the road graph.
    timestamps
        ``[t]`` timezone-aware time steps.
    hour, day, weekend
        ``[t]`` local hour of the day (fractional), day index from the first local day, and
        whether the local day is a Saturday or Sunday.
    rush
        The rush-hour profile.
    incidents, outages
        The event tables of :class:`SyntheticRoads`.
    noise_seed
        Seed of the measurement noise, drawn block by block.
    """

    parameters: RoadParameters
    network: RoadNetwork
    timestamps: pd.DatetimeIndex
    hour: np.ndarray
    day: np.ndarray
    weekend: np.ndarray
    rush: RushProfile
    incidents: pd.DataFrame
    outages: pd.DataFrame
    noise_seed: np.random.SeedSequence


def plan_roads(parameters: RoadParameters) -> RoadPlan:
    """Draw the network, the rush hours, the incidents and the outages (no readings yet).

    Each part has its own random stream, so turning incidents or outages off leaves the
    rest of the city as it was.

    Parameters
    ----------
    parameters
        The generator's parameters.
    """
    streams = np.random.SeedSequence(parameters.seed).spawn(5)
    network_rng, rush_rng, incident_rng, outage_rng = (
        np.random.default_rng(s) for s in streams[:4]
    )
    days = local_days(parameters.start, parameters.days, parameters.timezone)
    timestamps = pd.date_range(days[0], days[-1], freq=parameters.step, inclusive="left")
    local = timestamps.tz_localize(None)
    hour = np.asarray(local.hour + local.minute / 60.0 + local.second / 3600.0, dtype=float)
    day = np.asarray((local.normalize() - local[0].normalize()).days, dtype=np.int64)
    weekend = np.asarray(local.day_of_week >= 5)
    days_steps = np.searchsorted(timestamps.asi8, days.as_unit(timestamps.unit).asi8)
    network = make_network(parameters, network_rng)
    return RoadPlan(
        parameters=parameters,
        network=network,
        timestamps=timestamps,
        hour=hour,
        day=day,
        weekend=weekend,
        rush=rush_profile(network, parameters, rush_rng),
        incidents=draw_incidents(network, parameters, len(timestamps), incident_rng),
        outages=draw_outages(parameters, days_steps, outage_rng),
        noise_seed=streams[4],
    )


def speed_blocks(
    plan: RoadPlan, block_steps: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """``(first step, [t n] float32 speeds)`` block by block, in time order.

    Parameters
    ----------
    plan
        What :func:`plan_roads` drew.
    block_steps
        Steps per block; a week by default.
    """
    parameters, network, rush = plan.parameters, plan.network, plan.rush
    per_day = int(pd.Timedelta(days=1) / parameters.step)
    block_steps = block_steps or BLOCK_DAYS * per_day
    noise_rng = np.random.default_rng(plan.noise_seed)
    severity = 1.0 - plan.incidents["severity"].to_numpy()
    free = network.free_kmh.astype(np.float32)
    peak = rush.peak_hour.astype(np.float32)
    depth = rush.depth.astype(np.float32)
    width = rush.width_hours.astype(np.float32)
    steps = len(plan.timestamps)
    for first in range(0, steps, block_steps):
        last = min(first + block_steps, steps)
        block = np.empty((last - first, parameters.sensors), dtype=np.float32)
        for a in range(first, last, per_day):  # a day's worth at a time bounds temporaries
            b = min(a + per_day, last)
            hour = plan.hour[a:b, None].astype(np.float32)
            weekend = plan.weekend[a:b, None]
            factor = rush.day_factor[plan.day[a:b]][:, network.corridor].astype(np.float32)
            scale = np.where(weekend, np.float32(parameters.weekend_factor), np.float32(1.0))
            loss = np.zeros((b - a, parameters.sensors), dtype=np.float32)
            for k in range(2):
                shape = np.exp(np.float32(-0.5) * ((hour - peak[k]) / width[k]) ** 2)
                loss += depth[k] * shape
            loss *= scale
            midday = np.exp(np.float32(-0.5) * ((hour - np.float32(13.5)) / np.float32(2.0)) ** 2)
            loss += np.where(weekend, np.float32(0.25) * midday, np.float32(0.0)) * depth[0]
            loss *= factor
            np.clip(loss, 0.0, 0.85, out=loss)
            block[a - first : b - first] = free * (1.0 - loss)
        apply_windows(block, first, plan.incidents, severity)
        if parameters.noise_kmh > 0:
            noise = noise_rng.standard_normal(block.shape, dtype=np.float32)
            noise *= np.float32(parameters.noise_kmh)
            block += noise
            del noise
        np.maximum(block, np.float32(MIN_SPEED_KMH), out=block)
        np.round(block, 1, out=block)
        apply_windows(block, first, plan.outages, None)
        yield first, block


def generate_roads(parameters: RoadParameters | None = None) -> SyntheticRoads:
    """All speeds in memory (for small cities and tests; :func:`write_roads` streams).

    Parameters
    ----------
    parameters
        The generator's parameters; the defaults when None.
    """
    plan = plan_roads(parameters or RoadParameters())
    readings = np.concatenate([block for _, block in speed_blocks(plan)])
    return SyntheticRoads(plan.timestamps, readings, plan.network, plan.incidents, plan.outages)


def dataset_toml(plan: RoadPlan) -> str:
    """The ``dataset.toml``: kind level, speed in km/h, labelled synthetic.

    Parameters
    ----------
    plan
        What was drawn (the parameters, the counts for the comment).
    """
    parameters = plan.parameters
    label = synthetic_label("roads", parameters.seed)
    settings = {
        "name": "synthetic-roads",
        "kind": "level",
        "quantity": "speed",
        "unit": "km/h",
        "frequency": parameters.frequency,
        "timezone": parameters.timezone,
        "source": label,
        "licence": f"{label}; no real roads or vehicles, free to use (CC0-1.0)",
        # every link of edges.csv is a road link: keep them all, weighted by distance
        "kernel_sigma_m": round(2000.0 * parameters.spacing_km, 1),
        "kernel_threshold": 0.0,
    }
    corridors = int(plan.network.corridor.max()) + 1
    lines = [
        f"# Synthetic road speeds: {parameters.sensors} sensors on {corridors} corridors, "
        f"{len(plan.timestamps)} steps of {parameters.frequency}, seed {parameters.seed}.",
        f"# {plan.incidents['origin'].nunique()} incidents and {len(plan.outages)} detector "
        "outages: see incidents.csv and outages.csv.",
        *(f"{key} = {json.dumps(value, ensure_ascii=False)}" for key, value in settings.items()),
    ]
    return "\n".join(lines) + "\n"


def write_roads(
    out: Path | str, parameters: RoadParameters | None = None, force: bool = False
) -> SynthResult:
    """Generate road speeds and write them as a city folder that ``load_dataset`` reads.

    ``readings.parquet`` (wide: ``timestamp`` and one float32 column per sensor, one row
    group per week), ``sensors.csv`` (``sensor_id,latitude,longitude,name``), ``edges.csv``
    (``source,target,distance_m``: downstream along corridors, both ways at junctions),
    ``incidents.csv`` and ``outages.csv`` (what was injected, local times) and
    ``dataset.toml``.

    Parameters
    ----------
    out
        The folder to write (made if missing).
    parameters
        The generator's parameters; the defaults when None.
    force
        Write into a folder that already holds files.
    """
    parameters = parameters or RoadParameters()
    folder = check_folder(out, force)
    plan = plan_roads(parameters)
    network = plan.network
    folder.mkdir(parents=True, exist_ok=True)
    ids = list(network.sensor_ids)
    time_type = pa.timestamp("us", tz=parameters.timezone)
    schema = pa.schema(
        [pa.field("timestamp", time_type), *(pa.field(i, pa.float32()) for i in ids)],
        metadata={b"urbanflow.source": synthetic_label("roads", parameters.seed).encode()},
    )
    utc_us = plan.timestamps.as_unit("us").asi8
    with pq.ParquetWriter(folder / "readings.parquet", schema) as writer:
        for first, block in speed_blocks(plan):
            times = pa.array(utc_us[first : first + len(block)], type=time_type)
            columns = [times, *(pa.array(block[:, j]) for j in range(block.shape[1]))]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))
            del columns, block

    latitude, longitude = plane_to_degrees(network.x_km, network.y_km, parameters.centre)
    km = np.round(network.to_downstream_km, 1)
    pd.DataFrame(
        {
            "sensor_id": ids,
            "latitude": np.round(latitude, 6),
            "longitude": np.round(longitude, 6),
            "name": [
                f"corridor {c + 1}, {d} km before its end"
                for c, d in zip(network.corridor, km, strict=True)
            ],
        }
    ).to_csv(folder / "sensors.csv", index=False)
    edges = network.edges
    pd.DataFrame(
        {
            "source": np.asarray(ids)[edges["source"]],
            "target": np.asarray(ids)[edges["target"]],
            "distance_m": edges["distance_m"],
        }
    ).to_csv(folder / "edges.csv", index=False)
    write_events(folder, plan)
    (folder / "dataset.toml").write_text(dataset_toml(plan), encoding="utf-8")
    corridors = int(network.corridor.max()) + 1
    description = (
        f"synthetic road speeds, {parameters.sensors} sensors on {corridors} corridors, "
        f"{parameters.days} days of {parameters.frequency} from {parameters.start}, "
        f"seed {parameters.seed}"
    )
    return SynthResult(folder, len(plan.timestamps), description)


def write_events(folder: Path, plan: RoadPlan) -> None:
    """``incidents.csv`` and ``outages.csv``: the injected events, in local time.

    Parameters
    ----------
    folder
        The city folder.
    plan
        What was drawn.
    """
    ids = np.asarray(plan.network.sensor_ids)
    step_ns = plan.parameters.step.value
    for name, table in (("incidents", plan.incidents), ("outages", plan.outages)):
        start = plan.timestamps[0] + pd.to_timedelta(table["start_step"] * step_ns, unit="ns")
        frame = pd.DataFrame(
            {
                "sensor_id": ids[table["sensor"].to_numpy()],
                "start": start,
                "end": start + pd.to_timedelta(table["steps"] * step_ns, unit="ns"),
            }
        )
        if name == "incidents":
            frame["speed_factor"] = np.round(1.0 - table["severity"].to_numpy(), 3)
            frame["hops_upstream"] = table["hop"].to_numpy()
            frame["incident"] = table["origin"].to_numpy() + 1
        frame.to_csv(folder / f"{name}.csv", index=False)
