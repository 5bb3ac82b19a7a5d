"""Synthetic trip records: a fictional city's zones, a daily and weekly rhythm, a gravity model.

The city is ``zones`` points scattered over a disc around a fictional centre
(:data:`~urbanflow.data.synth.base.FICTIONAL_CENTRE`). Each zone has a residential weight
(spread out: log-normal, independent of place) and an office weight (concentrated: a
Gaussian bump at the centre and one or two smaller sub-centres). Trips have three purposes:

- ``to-work`` (weekdays): from a zone drawn by residential weight, peak around 08:00;
- ``to-home`` (weekdays): from a zone drawn by office weight, peak around 17:30;
- ``leisure`` (every day): from and to a mix of both weights, through the day and evening;
  at weekends it is the only purpose, later in the day and into the night.

The destination of a trip from zone *i* is drawn from the gravity model
``P(j | i) ∝ attraction_j · exp(-d_ij / distance_scale_km)``, with the attraction of the
purpose (offices for ``to-work``, homes for ``to-home``, the mix for ``leisure``) and ``d_ii``
half the distance to the nearest other zone. Each day's number of trips is Poisson around
``trips_per_day`` (a dry weekday), times ``weekend_factor`` at weekends and ``rain_factor`` on
rain days (each day rains with probability ``rain_share``). A trip starts at a uniform minute
of its hour (local wall-clock time), at a point scattered around its zone's centre, and ends
``access_minutes`` plus the detoured straight-line distance at ``speed_kmh`` later.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from urbanflow.data.synth.base import (
    FICTIONAL_CENTRE,
    SynthResult,
    check_at_least,
    check_file,
    check_share,
    hourly_profile,
    local_days,
    plane_to_degrees,
    synthetic_label,
    uniform_disc,
)

TRIP_COLUMNS = ("start_time", "start_lat", "start_lon", "end_time", "end_lat", "end_lon")
PURPOSES = ("to-work", "to-home", "leisure")


# Shares of a day's trips by purpose, and each purpose's hourly profile.
WEEKDAY_PURPOSE_SHARES = {"to-work": 0.3, "to-home": 0.3, "leisure": 0.4}
WEEKEND_PURPOSE_SHARES = {"to-work": 0.0, "to-home": 0.0, "leisure": 1.0}
WEEKDAY_PROFILES = {
    "to-work": hourly_profile(((7.75, 0.9, 1.0),), floor=0.0),
    "to-home": hourly_profile(((17.25, 1.3, 1.0),), floor=0.0),
    "leisure": hourly_profile(((12.5, 2.5, 0.6), (19.0, 2.0, 1.0)), floor=0.02),
}
WEEKEND_PROFILES = {
    **WEEKDAY_PROFILES,
    "leisure": hourly_profile(((14.5, 3.0, 1.0), (21.5, 2.0, 0.6)), floor=0.04),
}


@dataclass(frozen=True)
class TripCityParameters:
    """How the synthetic trip city is drawn; the defaults are what the CLI uses.

    Parameters
    ----------
    zones
        Number of zones (≥ 2).
    days
        Number of days (≥ 1).
    trips_per_day
        Expected trips on a dry weekday (> 0). With 60 zones the default 3,000 leaves most
        zone-hours between midnight and 05:00 without a trip.
    start
        The first day, ``YYYY-MM-DD`` (default a Monday).
    timezone
        IANA zone of the city's wall clock.
    seed
        Seed of the random generator: the same parameters give the same trips.
    centre
        ``(latitude, longitude)`` of the fictional city centre.
    radius_km
        Radius of the disc the zones are scattered over.
    distance_scale_km
        Distance scale of the gravity model: smaller means shorter trips.
    speed_kmh
        Door-to-door travel speed along the detoured distance.
    detour_factor
        Travelled distance per straight-line kilometre.
    access_minutes
        Time added to every trip (walking to the vehicle, parking).
    weekend_factor
        Trips on a Saturday or Sunday relative to a weekday.
    rain_share
        Probability that a day rains.
    rain_factor
        Trips on a rain day relative to a dry one.
    """

    zones: int = 60
    days: int = 28
    trips_per_day: float = 3000.0
    start: str = "2026-03-02"
    timezone: str = "Europe/Berlin"
    seed: int = 0
    centre: tuple[float, float] = FICTIONAL_CENTRE
    radius_km: float = 8.0
    distance_scale_km: float = 3.0
    speed_kmh: float = 18.0
    detour_factor: float = 1.3
    access_minutes: float = 2.0
    weekend_factor: float = 0.6
    rain_share: float = 0.15
    rain_factor: float = 0.8

    def __post_init__(self) -> None:
        check_at_least(self.zones, 2, "--zones")
        check_at_least(self.days, 1, "--days")
        check_at_least(self.trips_per_day, 1, "--trips-per-day")
        for name in ("radius_km", "distance_scale_km", "speed_kmh"):
            check_at_least(getattr(self, name), 1e-3, name)
        check_at_least(self.detour_factor, 1.0, "detour_factor")
        check_at_least(self.access_minutes, 0.0, "access_minutes")
        for name in ("weekend_factor", "rain_share", "rain_factor"):
            check_share(getattr(self, name), name)


@dataclass(frozen=True)
class TripCity:
    """The zones of a synthetic city.

    Parameters
    ----------
    x_km, y_km
        ``[z]`` zone centres, kilometres east and north of the city centre.
    residential
        ``[z]`` residential weight of each zone (sums to 1).
    office
        ``[z]`` office weight of each zone (sums to 1).
    distance_km
        ``[z z]`` straight-line distances between zone centres; the diagonal holds the
        intrazonal distance (half the distance to the nearest other zone).
    """

    x_km: np.ndarray
    y_km: np.ndarray
    residential: np.ndarray
    office: np.ndarray
    distance_km: np.ndarray

    @property
    def leisure(self) -> np.ndarray:
        """``[z]`` the attraction of leisure trips: the mean of both weights."""
        return 0.5 * (self.residential + self.office)

    @property
    def spacing_km(self) -> float:
        """The median distance from a zone to its nearest neighbour."""
        return float(np.median(2.0 * np.diag(self.distance_km)))


@dataclass(frozen=True)
class SyntheticTrips:
    """Generated trips with what produced them (for tests and summaries).

    Parameters
    ----------
    trips
        The table: :data:`TRIP_COLUMNS`, times timezone-aware in the city's zone, sorted by
        start time.
    origin, destination
        ``[trips]`` zone index of each trip's start and end.
    purpose
        ``[trips]`` index into :data:`PURPOSES`.
    city
        The zones.
    days
        ``[days + 1]`` local midnights from the first day to the day after the last.
    rain
        ``[days]`` whether each day rains.
    """

    trips: pd.DataFrame
    origin: np.ndarray
    destination: np.ndarray
    purpose: np.ndarray
    city: TripCity
    days: pd.DatetimeIndex
    rain: np.ndarray


def make_city(parameters: TripCityParameters, rng: np.random.Generator) -> TripCity:
    """Zones scattered uniformly over a disc, with residential and office weights.

    Parameters
    ----------
    parameters
        The city's size (``zones``, ``radius_km``).
    rng
        The random generator.
    """
    zones, radius = parameters.zones, parameters.radius_km
    x, y = uniform_disc(zones, radius, rng)
    residential = rng.lognormal(0.0, 0.5, zones)
    # offices: the centre, then one or two sub-centres at half to three quarters of the radius
    centres = [(0.0, 0.0, 1.0, 0.2 * radius)]
    for _ in range(rng.integers(1, 3)):
        r, a = radius * rng.uniform(0.45, 0.75), rng.uniform(0.0, 2.0 * np.pi)
        centres.append((r * np.cos(a), r * np.sin(a), rng.uniform(0.4, 0.6), 0.12 * radius))
    office = np.full(zones, 0.03)
    for cx, cy, weight, width in centres:
        office += weight * np.exp(-0.5 * ((x - cx) ** 2 + (y - cy) ** 2) / width**2)
    distance = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    np.fill_diagonal(distance, np.inf)
    np.fill_diagonal(distance, 0.5 * distance.min(axis=1))
    return TripCity(x, y, residential / residential.sum(), office / office.sum(), distance)


def destination_probabilities(
    distance_km: np.ndarray, attraction: np.ndarray, scale_km: float
) -> np.ndarray:
    """``[z z]`` the gravity model: row *i* is ``P(destination j | origin i)``.

    Parameters
    ----------
    distance_km
        ``[z z]`` distances between zones (diagonal: intrazonal distance).
    attraction
        ``[z]`` weight of each zone as a destination.
    scale_km
        Distance scale of the exponential decay.
    """
    weights = attraction[None, :] * np.exp(-distance_km / scale_km)
    return weights / weights.sum(axis=1, keepdims=True)


def day_totals(
    parameters: TripCityParameters, days: pd.DatetimeIndex, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``[days]`` expected trips per day and ``[days]`` rain flags.

    Parameters
    ----------
    parameters
        ``trips_per_day``, ``weekend_factor``, ``rain_share``, ``rain_factor``.
    days
        ``[days + 1]`` local midnights.
    rng
        The random generator (draws the rain days).
    """
    weekend = days[:-1].day_of_week >= 5
    rain = rng.random(len(days) - 1) < parameters.rain_share
    expected = np.full(len(rain), float(parameters.trips_per_day))
    expected[weekend] *= parameters.weekend_factor
    expected[rain] *= parameters.rain_factor
    return expected, rain


def trip_counts(expected: np.ndarray, weekend: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``[days purposes 24]`` Poisson trip counts by day, purpose and hour of day.

    Parameters
    ----------
    expected
        ``[days]`` expected trips of each day.
    weekend
        ``[days]`` whether each day is a Saturday or Sunday.
    rng
        The random generator.
    """
    rates = np.empty((len(expected), len(PURPOSES), 24))
    for p, purpose in enumerate(PURPOSES):
        weekday_rate = WEEKDAY_PURPOSE_SHARES[purpose] * WEEKDAY_PROFILES[purpose]
        weekend_rate = WEEKEND_PURPOSE_SHARES[purpose] * WEEKEND_PROFILES[purpose]
        rates[:, p, :] = np.where(weekend[:, None], weekend_rate, weekday_rate)
    return rng.poisson(rates * expected[:, None, None])


def sample_destinations(
    origin: np.ndarray, probabilities: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """``[trips]`` a destination zone for each origin, drawn from its row of ``probabilities``.

    Parameters
    ----------
    origin
        ``[trips]`` origin zone of each trip.
    probabilities
        ``[z z]`` destination probabilities per origin (rows sum to 1).
    rng
        The random generator.
    """
    zones = probabilities.shape[0]
    cumulative = np.cumsum(probabilities, axis=1)
    draws = rng.random(len(origin))
    destination = np.empty(len(origin), dtype=np.int64)
    order = np.argsort(origin, kind="stable")
    bounds = np.searchsorted(origin[order], np.arange(zones + 1))
    for zone in range(zones):
        members = order[bounds[zone] : bounds[zone + 1]]
        destination[members] = np.searchsorted(cumulative[zone], draws[members], side="right")
    return np.minimum(destination, zones - 1)  # a draw above a row's rounded total


def localise(naive: np.ndarray, timezone: str, rng: np.random.Generator) -> pd.DatetimeIndex:
    """Wall-clock times as instants in ``timezone``.

    A time the clocks skip (spring) moves one hour on; one they repeat (autumn) falls in
    either occurrence at random.

    Parameters
    ----------
    naive
        ``[n]`` wall-clock times (``datetime64``).
    timezone
        IANA zone name.
    rng
        The random generator (picks the occurrence of a repeated time).
    """
    earlier = rng.random(len(naive)) < 0.5
    return pd.DatetimeIndex(naive).tz_localize(
        timezone, ambiguous=earlier, nonexistent=pd.Timedelta(hours=1)
    )


def generate_trips(parameters: TripCityParameters | None = None) -> SyntheticTrips:
    """Draw the trips of a synthetic city (see the module's description).

    Parameters
    ----------
    parameters
        The generator's parameters; the defaults when None.
    """
    parameters = parameters or TripCityParameters()
    rng = np.random.default_rng(parameters.seed)
    days = local_days(parameters.start, parameters.days, parameters.timezone)
    city = make_city(parameters, rng)
    expected, rain = day_totals(parameters, days, rng)
    counts = trip_counts(expected, days[:-1].day_of_week >= 5, rng)

    day, purpose, hour = (
        np.repeat(index.ravel(), counts.ravel()) for index in np.indices(counts.shape)
    )
    origin = np.empty(len(day), dtype=np.int64)
    destination = np.empty(len(day), dtype=np.int64)
    flows = {  # purpose: (origin weight, destination attraction)
        "to-work": (city.residential, city.office),
        "to-home": (city.office, city.residential),
        "leisure": (city.leisure, city.leisure),
    }
    for p, name in enumerate(PURPOSES):
        members = np.flatnonzero(purpose == p)
        origins_weight, attraction = flows[name]
        origin[members] = rng.choice(parameters.zones, size=len(members), p=origins_weight)
        gravity = destination_probabilities(
            city.distance_km, attraction, parameters.distance_scale_km
        )
        destination[members] = sample_destinations(origin[members], gravity, rng)

    spread = 0.35 * city.spacing_km
    start_x = city.x_km[origin] + rng.normal(0.0, spread, len(day))
    start_y = city.y_km[origin] + rng.normal(0.0, spread, len(day))
    end_x = city.x_km[destination] + rng.normal(0.0, spread, len(day))
    end_y = city.y_km[destination] + rng.normal(0.0, spread, len(day))
    travelled = parameters.detour_factor * np.hypot(end_x - start_x, end_y - start_y)
    minutes = parameters.access_minutes + 60.0 * travelled / parameters.speed_kmh

    midnight = days[:-1].tz_localize(None).values.astype("datetime64[s]")
    seconds = (hour * 3600 + rng.integers(0, 3600, len(day))).astype("timedelta64[s]")
    start = localise(midnight[day] + seconds, parameters.timezone, rng).as_unit("us")
    end = start + pd.to_timedelta(np.round(minutes * 60.0), unit="s")

    start_lat, start_lon = plane_to_degrees(start_x, start_y, parameters.centre)
    end_lat, end_lon = plane_to_degrees(end_x, end_y, parameters.centre)
    order = np.argsort(start.asi8, kind="stable")
    trips = pd.DataFrame(
        {
            "start_time": start[order],
            "start_lat": np.round(start_lat[order], 6),
            "start_lon": np.round(start_lon[order], 6),
            "end_time": end[order],
            "end_lat": np.round(end_lat[order], 6),
            "end_lon": np.round(end_lon[order], 6),
        }
    )
    return SyntheticTrips(
        trips, origin[order], destination[order], purpose[order], city, days, rain
    )


def iso_with_offset(times: pd.Series) -> pd.Series:
    """Timezone-aware times as ISO 8601 text with their offset (``2026-03-02T08:15:00+01:00``).

    Parameters
    ----------
    times
        Timezone-aware timestamps.
    """
    wall_clock = times.dt.tz_localize(None)
    local = np.datetime_as_string(wall_clock.to_numpy().astype("datetime64[s]"), unit="s")
    offset_minutes = (
        (wall_clock - times.dt.tz_convert("UTC").dt.tz_localize(None))
        .dt.total_seconds()
        .floordiv(60)
        .astype(np.int64)
    )
    texts = {
        minutes: f"{'+' if minutes >= 0 else '-'}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
        for minutes in np.unique(offset_minutes)
    }
    return pd.Series(local, index=times.index, dtype=object) + offset_minutes.map(texts)


def write_trips(
    out: Path | str, parameters: TripCityParameters | None = None, force: bool = False
) -> SynthResult:
    """Generate trips and write them: CSV when ``out`` ends in ``.csv``, else Parquet.

    Parquet keeps timezone-aware timestamps and carries :func:`synthetic_label` in its
    schema metadata (key ``urbanflow.source``); CSV writes local times with their offset.

    Parameters
    ----------
    out
        The file to write.
    parameters
        The generator's parameters; the defaults when None.
    force
        Overwrite an existing file.
    """
    parameters = parameters or TripCityParameters()
    path = check_file(out, force)
    trips = generate_trips(parameters).trips
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        text = trips.assign(
            start_time=iso_with_offset(trips["start_time"]),
            end_time=iso_with_offset(trips["end_time"]),
        )
        text.to_csv(path, index=False)
    else:
        table = pa.Table.from_pandas(trips, preserve_index=False)
        label = synthetic_label("trips", parameters.seed).encode()
        metadata = {**(table.schema.metadata or {}), b"urbanflow.source": label}
        pq.write_table(table.replace_schema_metadata(metadata), path)
    description = (
        f"synthetic trips, {parameters.zones} zones, {parameters.days} days from "
        f"{parameters.start}, seed {parameters.seed}"
    )
    return SynthResult(path, len(trips), description)
