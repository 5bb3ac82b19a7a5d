"""Synthetic hospital-ward occupancy: Poisson admissions, log-normal stays, fixed bed counts.

``wards`` wards in ``hospitals`` hospitals of a fictional city, each with a bed capacity
drawn uniformly from ``min_beds..max_beds``. Patients arrive at each ward as a Poisson process
per hour whose rate follows the hour of the day (:data:`ADMISSION_HOURLY`: most in the late
morning, fewest at night) and the day of the week (:data:`ADMISSION_WEEKDAY`: weekdays above
weekends), scaled so that the ward would be ``target_occupancy`` full on average (Little's
law: rate = target × capacity / mean stay). Each stay is log-normal, in hours: median
``median_stay_hours`` times a per-ward factor ``exp(N(0, ward_stay_spread))``, shape
``stay_sigma``.

A patient who arrives when every bed is taken is **diverted**: counted, never admitted, so the
occupancy never exceeds the capacity. All movements of an hour happen at its timestamp:
patients whose stay ends leave, then the hour's arrivals are admitted while beds are free;
the reading at a timestamp is the number of patients in the ward after that. The simulation
starts ``warmup_days`` before the first day (then dropped), so the first day starts from a
full-looking ward rather than an empty one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from urbanflow.data.synth.base import (
    FICTIONAL_CENTRE,
    SynthResult,
    check_at_least,
    check_folder,
    check_share,
    hourly_profile,
    local_days,
    plane_to_degrees,
    synthetic_label,
    uniform_disc,
)
from urbanflow.errors import ConfigError

# Share of a day's admissions by local hour: a late-morning peak (planned admissions), an
# afternoon-evening shoulder (emergencies), few at night.
ADMISSION_HOURLY = hourly_profile(((10.5, 2.0, 1.0), (16.5, 3.0, 0.6)), floor=0.08)
# Admissions by day of the week (Monday first) relative to the weekly mean.
ADMISSION_WEEKDAY = np.array([1.2, 1.15, 1.1, 1.1, 1.05, 0.7, 0.7]) / (7.75 / 7)
WARD_SPECIALTIES = (
    "internal medicine",
    "general surgery",
    "cardiology",
    "orthopaedics",
    "neurology",
    "geriatrics",
    "oncology",
    "paediatrics",
    "pulmonology",
    "urology",
)


@dataclass(frozen=True)
class WardParameters:
    """How the synthetic wards are drawn; the defaults are what the CLI uses.

    Parameters
    ----------
    wards
        Number of wards (≥ 1).
    days
        Number of days of hourly readings (≥ 1).
    start
        The first day, ``YYYY-MM-DD`` (default a Monday).
    timezone
        IANA zone of the hospitals' wall clock.
    seed
        Seed of the random generator: the same parameters give the same readings.
    hospitals
        Number of hospital sites the wards are spread over (at most ``wards``).
    min_beds, max_beds
        Range of the beds of a ward (capacity drawn uniformly, both ends included).
    median_stay_hours
        Median length of stay, in hours, before the per-ward factor.
    stay_sigma
        Shape of the log-normal stay (standard deviation of its log).
    ward_stay_spread
        Standard deviation of the log of each ward's median-stay factor.
    target_occupancy
        The share of beds the admission rate would fill on average without diversion.
    warmup_days
        Days simulated before the first day and dropped.
    centre
        ``(latitude, longitude)`` of the fictional city centre.
    radius_km
        Radius of the disc the hospitals are placed in.
    """

    wards: int = 12
    days: int = 28
    start: str = "2026-03-02"
    timezone: str = "Europe/Berlin"
    seed: int = 0
    hospitals: int = 3
    min_beds: int = 12
    max_beds: int = 40
    median_stay_hours: float = 72.0
    stay_sigma: float = 0.7
    ward_stay_spread: float = 0.3
    target_occupancy: float = 0.85
    warmup_days: int = 21
    centre: tuple[float, float] = FICTIONAL_CENTRE
    radius_km: float = 6.0

    def __post_init__(self) -> None:
        check_at_least(self.wards, 1, "--wards")
        check_at_least(self.days, 1, "--days")
        check_at_least(self.hospitals, 1, "--hospitals")
        check_at_least(self.min_beds, 1, "min_beds")
        check_at_least(self.max_beds, self.min_beds, "max_beds")
        check_at_least(self.median_stay_hours, 1.0, "median_stay_hours")
        check_at_least(self.stay_sigma, 0.0, "stay_sigma")
        check_at_least(self.ward_stay_spread, 0.0, "ward_stay_spread")
        check_at_least(self.warmup_days, 0, "warmup_days")
        check_at_least(self.radius_km, 0.0, "radius_km")
        check_share(self.target_occupancy, "target_occupancy")
        if self.hospitals > self.wards:
            raise ConfigError(
                f"--hospitals {self.hospitals} is more than --wards {self.wards}; "
                "give at most one hospital per ward"
            )


@dataclass(frozen=True)
class WardSimulation:
    """Simulated wards, hour by hour (after the warm-up).

    Parameters
    ----------
    timestamps
        ``[t]`` hourly timestamps, timezone-aware.
    ward_ids
        ``[w]`` ward ids (``W01``, ``W02``, ...).
    names
        ``[w]`` hospital, ward number and specialty of each ward.
    latitude, longitude
        ``[w]`` coordinates: a ward's hospital site plus a few metres.
    capacity
        ``[w]`` beds of each ward.
    median_stay_hours
        ``[w]`` median length of stay of each ward.
    rate
        ``[t w]`` expected arrivals per hour.
    arrivals
        ``[t w]`` patients arriving in each hour.
    admitted
        ``[t w]`` of them, those who found a free bed; the rest were diverted.
    occupancy
        ``[t w]`` patients in each ward after the hour's movements: integers in
        ``0..capacity``.
    stays_hours
        Length of stay of every admitted patient (warm-up included), in hours.
    stay_ward
        Ward index of each entry of ``stays_hours``.
    """

    timestamps: pd.DatetimeIndex
    ward_ids: tuple[str, ...]
    names: tuple[str, ...]
    latitude: np.ndarray
    longitude: np.ndarray
    capacity: np.ndarray
    median_stay_hours: np.ndarray
    rate: np.ndarray
    arrivals: np.ndarray
    admitted: np.ndarray
    occupancy: np.ndarray
    stays_hours: np.ndarray
    stay_ward: np.ndarray

    @property
    def diverted(self) -> np.ndarray:
        """``[t w]`` arrivals turned away because the ward was full."""
        return self.arrivals - self.admitted


def admission_rates(timestamps: pd.DatetimeIndex, per_hour: np.ndarray) -> np.ndarray:
    """``[t w]`` expected arrivals: each ward's mean hourly rate shaped by hour and weekday.

    Parameters
    ----------
    timestamps
        ``[t]`` local hourly timestamps.
    per_hour
        ``[w]`` mean arrivals per hour of each ward over a week.
    """
    shape = 24.0 * ADMISSION_HOURLY[timestamps.hour] * ADMISSION_WEEKDAY[timestamps.day_of_week]
    return np.asarray(shape)[:, None] * per_hour[None, :]


def run_wards(
    arrivals: np.ndarray, capacity: np.ndarray, stay_steps: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Admit arrivals while beds are free and discharge them after their stay.

    Parameters
    ----------
    arrivals
        ``[t w]`` arrivals per hour and ward.
    capacity
        ``[w]`` beds per ward.
    stay_steps
        ``[arrivals.sum()]`` stay in whole hours (≥ 1) of each arrival, in the order of
        ``arrivals`` flattened (hour by hour, ward by ward within an hour).

    Returns
    -------
    tuple
        ``admitted [t w]``, ``occupancy [t w]`` and ``[arrivals.sum()]`` whether each arrival
        was admitted.
    """
    steps, wards = arrivals.shape
    first = np.concatenate([[0], np.cumsum(arrivals.ravel())])[:-1].reshape(steps, wards)
    leaving = np.zeros((steps + 1, wards), dtype=np.int64)
    admitted = np.zeros_like(arrivals)
    occupancy = np.zeros_like(arrivals)
    was_admitted = np.zeros(int(arrivals.sum()), dtype=bool)
    present = np.zeros(wards, dtype=np.int64)
    ward_index = np.arange(wards)
    for step in range(steps):
        present -= leaving[step]
        taken = np.minimum(arrivals[step], capacity - present)
        within = np.arange(taken.sum()) - np.repeat(np.cumsum(taken) - taken, taken)
        patients = np.repeat(first[step], taken) + within
        was_admitted[patients] = True
        leave = np.minimum(step + stay_steps[patients], steps)  # row `steps`: after the end
        np.add.at(leaving, (leave, np.repeat(ward_index, taken)), 1)
        present += taken
        admitted[step], occupancy[step] = taken, present
    return admitted, occupancy, was_admitted


def place_wards(
    parameters: WardParameters, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Coordinates and names of the wards: hospital sites, wards a few metres apart.

    Parameters
    ----------
    parameters
        ``wards``, ``hospitals``, ``centre`` and ``radius_km``.
    rng
        The random generator.
    """
    sites = parameters.hospitals
    site_x, site_y = uniform_disc(sites, parameters.radius_km, rng)
    hospital = np.sort(np.arange(parameters.wards) % sites)
    x = site_x[hospital] + rng.normal(0.0, 0.015, parameters.wards)
    y = site_y[hospital] + rng.normal(0.0, 0.015, parameters.wards)
    latitude, longitude = plane_to_degrees(x, y, parameters.centre)
    number = np.arange(parameters.wards) - np.searchsorted(hospital, hospital)
    names = tuple(
        f"Hospital {chr(ord('A') + h % 26)}{h // 26 or ''}, ward {n + 1} "
        f"({WARD_SPECIALTIES[w % len(WARD_SPECIALTIES)]})"
        for w, (h, n) in enumerate(zip(hospital, number, strict=True))
    )
    return np.round(latitude, 6), np.round(longitude, 6), names


def simulate_wards(parameters: WardParameters | None = None) -> WardSimulation:
    """Simulate the wards hour by hour (see the module's description).

    Parameters
    ----------
    parameters
        The generator's parameters; the defaults when None.
    """
    parameters = parameters or WardParameters()
    rng = np.random.default_rng(parameters.seed)
    days = local_days(parameters.start, parameters.days, parameters.timezone)
    warmup = pd.Timedelta(days=parameters.warmup_days)
    hours = pd.date_range(days[0] - warmup, days[-1], freq="h", inclusive="left")
    kept = hours >= days[0]

    latitude, longitude, names = place_wards(parameters, rng)
    capacity = rng.integers(parameters.min_beds, parameters.max_beds + 1, parameters.wards)
    median = parameters.median_stay_hours * np.exp(
        rng.normal(0.0, parameters.ward_stay_spread, parameters.wards)
    )
    mean_stay = median * np.exp(parameters.stay_sigma**2 / 2)
    rate = admission_rates(hours, parameters.target_occupancy * capacity / mean_stay)
    arrivals = rng.poisson(rate)
    arrival_ward = np.tile(np.arange(parameters.wards), len(hours)).repeat(arrivals.ravel())
    stays = rng.lognormal(np.log(median)[arrival_ward], parameters.stay_sigma)
    stay_steps = np.maximum(1, np.ceil(stays)).astype(np.int64)
    admitted, occupancy, was_admitted = run_wards(arrivals, capacity, stay_steps)

    return WardSimulation(
        timestamps=hours[kept],
        ward_ids=tuple(f"W{w + 1:02d}" for w in range(parameters.wards)),
        names=names,
        latitude=latitude,
        longitude=longitude,
        capacity=capacity,
        median_stay_hours=median,
        rate=rate[kept],
        arrivals=arrivals[kept],
        admitted=admitted[kept],
        occupancy=occupancy[kept],
        stays_hours=stays[was_admitted],
        stay_ward=arrival_ward[was_admitted],
    )


def dataset_toml(simulation: WardSimulation, parameters: WardParameters) -> str:
    """The ``dataset.toml`` of a ward folder: kind occupancy, hourly, labelled synthetic.

    Diversions go into a comment: the reader refuses unknown keys.

    Parameters
    ----------
    simulation
        The simulated wards.
    parameters
        The parameters they were simulated with.
    """
    label = synthetic_label("wards", parameters.seed)
    diverted, arrived = int(simulation.diverted.sum()), int(simulation.arrivals.sum())
    settings = {
        "name": "synthetic-wards",
        "kind": "occupancy",
        "quantity": "occupied beds",
        "unit": "beds",
        "frequency": "1h",
        "timezone": parameters.timezone,
        "source": label,
        "licence": f"{label}; no real patients or hospitals, free to use (CC0-1.0)",
    }
    lines = [
        f"# Synthetic hospital-ward occupancy: {len(simulation.ward_ids)} wards, "
        f"{len(simulation.timestamps)} hours, seed {parameters.seed}.",
        f"# {diverted} of {arrived} arrivals found their ward full and were diverted "
        "(not counted in the occupancy).",
        *(f"{key} = {json.dumps(value, ensure_ascii=False)}" for key, value in settings.items()),
    ]
    return "\n".join(lines) + "\n"


def write_wards(
    out: Path | str, parameters: WardParameters | None = None, force: bool = False
) -> SynthResult:
    """Simulate wards and write them as a city folder that ``load_dataset`` reads.

    ``readings.parquet`` (wide: ``timestamp`` and one column per ward), ``sensors.csv``
    (``sensor_id,latitude,longitude,name,capacity``) and ``dataset.toml``.

    Parameters
    ----------
    out
        The folder to write (made if missing).
    parameters
        The generator's parameters; the defaults when None.
    force
        Write into a folder that already holds files.
    """
    parameters = parameters or WardParameters()
    folder = check_folder(out, force)
    simulation = simulate_wards(parameters)
    folder.mkdir(parents=True, exist_ok=True)
    readings = pd.DataFrame(simulation.occupancy, columns=list(simulation.ward_ids))
    readings.insert(0, "timestamp", simulation.timestamps)
    readings.to_parquet(folder / "readings.parquet", index=False)
    sensors = pd.DataFrame(
        {
            "sensor_id": simulation.ward_ids,
            "latitude": simulation.latitude,
            "longitude": simulation.longitude,
            "name": simulation.names,
            "capacity": simulation.capacity,
        }
    )
    sensors.to_csv(folder / "sensors.csv", index=False)
    (folder / "dataset.toml").write_text(dataset_toml(simulation, parameters), encoding="utf-8")
    description = (
        f"synthetic ward occupancy, {parameters.wards} wards in {parameters.hospitals} "
        f"hospitals, {parameters.days} days from {parameters.start}, seed {parameters.seed}, "
        f"{int(simulation.diverted.sum())} arrivals diverted"
    )
    return SynthResult(folder, len(simulation.timestamps), description)
