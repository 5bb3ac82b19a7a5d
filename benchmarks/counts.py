"""Count and occupancy data: the recommended model against the baselines, on generated cities.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/counts.py [--work /tmp/counts] [--budget 4]

Generates, with fixed seeds, the cities the rules of issue 10 are checked on (none of them is
Los-loop, and none was used to choose a rule):

- ``bus``: a bus-ridership-like city (675 stops on 25 routes, hourly boardings, 30 days, about
  80 % of stop-hours zero): stops' popularity log-normal, morning and evening peaks on
  weekdays, a late-day hump on weekends, a day effect shared by all stops (weather), Poisson
  counts around a gamma-noised rate. Written by this script, labelled synthetic.
- ``trips``: ``urbanflow datasets synth trips`` (300 zones, 30 days, seed 3) through
  ``urbanflow datasets from-trips --zones h3:8 --frequency 1h``: hourly departures per cell.
- ``synthetic-demand``: the built-in 15-minute demand city.
- ``wards``: ``urbanflow datasets synth wards`` (24 wards, 56 days, seed 1): hourly occupancy.

Each gets ``urbanflow evaluate`` of ``historical-average``, ``last-value`` and
``ridge-per-sensor``, and ``urbanflow train --model stid-graph --time-budget B`` with no other
option: the command a city team would run. Prints a Markdown table and writes
``counts.json`` (date, machine, commit, MAE and RMSE per horizon, the lowest forecast).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from provenance import cpu_name, git_commit

from urbanflow import __version__

BASELINES = ("historical-average", "last-value", "ridge-per-sensor")
RECOMMENDED = "stid-graph"
URBANFLOW = [sys.executable, "-m", "urbanflow"]


def write_bus_city(folder: Path, seed: int = 0, stops: int = 675, days: int = 30) -> Path:
    """A bus-ridership-like city folder of hourly boardings (see the module docstring)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    routes = 25
    per_route = stops // routes
    latitude, longitude, ids = [], [], []
    for route in range(routes):
        angle = rng.uniform(0, 2 * np.pi)
        x0, y0 = rng.normal(0, 0.02, 2)
        for k in range(per_route):
            latitude.append(45.0 + y0 + np.sin(angle) * 0.0025 * k + rng.normal(0, 0.0003))
            longitude.append(9.0 + x0 + np.cos(angle) * 0.0035 * k + rng.normal(0, 0.0003))
            ids.append(f"s{route:02d}_{k:02d}")
    n = len(ids)
    times = pd.date_range("2026-03-02", periods=days * 24, freq="1h", tz="Europe/Rome")
    hour = times.hour.to_numpy()[:, None]
    weekday = (times.day_of_week.to_numpy() < 5)[:, None]
    service = ((hour >= 6) & (hour <= 22)).astype(float)
    peaks = np.exp(-0.5 * ((hour - 8) / 1.2) ** 2) + 0.8 * np.exp(-0.5 * ((hour - 17.5) / 1.5) ** 2)
    weekend = 0.5 * np.exp(-0.5 * ((hour - 14) / 3.5) ** 2) + 0.12 * ((hour >= 7) & (hour <= 23))
    profile = np.where(weekday, peaks + 0.25 * service, weekend)
    popularity = rng.lognormal(-0.9, 1.1, n)
    residential = rng.random(n) < 0.4  # boardings peak in the morning, else in the evening
    own_peak = np.where(residential, 8.0, 17.5)[None, :]
    shape = 1 + 0.6 * np.exp(-0.5 * ((hour - own_peak) / 1.5) ** 2)
    day_effect = np.repeat(rng.gamma(20, 1 / 20, days), 24)[:, None]
    rate = popularity * profile * shape * day_effect * rng.gamma(5, 1 / 5, (len(times), n))
    counts = rng.poisson(rate).astype(float)
    wide = pd.DataFrame(counts, columns=ids)
    wide.insert(0, "timestamp", times.tz_localize(None).strftime("%Y-%m-%d %H:%M"))
    wide.to_parquet(folder / "readings.parquet", index=False)
    sensors = pd.DataFrame({"sensor_id": ids, "latitude": latitude, "longitude": longitude})
    sensors.to_csv(folder / "sensors.csv", index=False)
    (folder / "dataset.toml").write_text(
        'name = "synthetic-bus"\nquantity = "boardings"\nunit = "passengers"\n'
        'frequency = "1h"\ntimezone = "Europe/Rome"\ncountry = "IT"\n'
        f'source = "synthetic: benchmarks/counts.py write_bus_city(seed={seed})"\n'
        'licence = "synthetic"\n',
        encoding="utf-8",
    )
    return folder


def run(*args: str) -> None:
    subprocess.run([*URBANFLOW, *args], check=True, stdout=subprocess.DEVNULL)


def cities(work: Path) -> dict[str, str]:
    """Name -> dataset argument of every city measured (generated under ``work``)."""
    bus = write_bus_city(work / "bus")
    trips = work / "trips.parquet"
    run("datasets", "synth", "trips", "--out", str(trips), "--zones", "300", "--days", "30",
        "--trips-per-day", "8000", "--seed", "3", "--force")  # fmt: skip
    run("datasets", "from-trips", str(trips), "--zones", "h3:8", "--frequency", "1h",
        "--timezone", "Europe/Berlin", "--out", str(work / "trips"), "--force")  # fmt: skip
    run("datasets", "synth", "wards", "--out", str(work / "wards"), "--wards", "24",
        "--days", "56", "--seed", "1", "--force")  # fmt: skip
    return {
        "bus": str(bus),
        "trips": str(work / "trips" / "departures"),
        "synthetic-demand": "synthetic-demand",
        "wards": str(work / "wards"),
    }


def scores(result: dict) -> dict:
    return {
        "kind": result.get("kind"),
        "horizons": [
            {"minutes": h["minutes"], "mae": h["mae"], "rmse": h["rmse"]}
            for h in result["horizons"]
        ],
    }


def lowest_forecast(dataset: str, bundle: Path) -> float:
    """The lowest value the bundle forecasts over the dataset's test part."""
    out = bundle / "forecasts.parquet"
    card = json.loads((bundle / "card.json").read_text())
    first = card["dataset"]["fit_stop"]
    from urbanflow.data.catalog import load_dataset

    stamps = load_dataset(dataset).timestamps
    run("forecast", "--model-dir", str(bundle), "--dataset", dataset, "--output", str(out),
        "--start", str(stamps[first]), "--end", str(stamps[-1]))  # fmt: skip
    return float(pd.read_parquet(out)["value"].min())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/urbanflow-counts"))
    parser.add_argument("--budget", type=float, default=4.0, help="minutes for stid-graph")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results"))
    options = parser.parse_args()
    options.work.mkdir(parents=True, exist_ok=True)

    rows = []
    for name, dataset in cities(options.work).items():
        for model in BASELINES:
            path = options.work / f"{name}-{model}.json"
            run("evaluate", "--dataset", dataset, "--model", model, "--output", str(path))
            rows.append({"city": name, "model": model, **scores(json.loads(path.read_text()))})
            print(f"{name:18} {model:20} done", flush=True)
        bundle = options.work / f"{name}-{RECOMMENDED}"
        run("train", "--dataset", dataset, "--model", RECOMMENDED,
            "--time-budget", f"{options.budget:g}", "--out", str(bundle))  # fmt: skip
        card = json.loads((bundle / "card.json").read_text())
        rows.append(
            {
                "city": name,
                "model": f"{RECOMMENDED} --time-budget {options.budget:g}",
                **scores(card["metrics"]),
                "networks": card["hyperparameters"]["ensemble"],
                "lowest_forecast": lowest_forecast(dataset, bundle),
            }
        )
        print(f"{name:18} {RECOMMENDED:20} done", flush=True)

    lines = []
    for row in rows:
        cells = " | ".join(f"{h['mae']:.3f} / {h['rmse']:.3f}" for h in row["horizons"])
        lowest = row.get("lowest_forecast")
        lines.append(
            f"| {row['city']} | {row['model']} | {cells} | "
            f"{'' if lowest is None else f'{lowest:.3f}'} |"
        )
    print("\n".join(lines))
    meta = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "commit": git_commit(),
        "urbanflow": __version__,
        "budget_min": options.budget,
    }
    options.output.mkdir(parents=True, exist_ok=True)
    path = options.output / "counts.json"
    path.write_text(json.dumps({**meta, "rows": rows}, indent=2) + "\n", encoding="utf-8")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
