"""A tiny count city for the rebalancing tests: departures per zone and hour, a 3×3 grid of
zones 1.1 km apart, a morning peak in the west and an evening peak in the east."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from urbanflow.cli import main

ZONES = tuple(f"Z{i}" for i in range(9))
LATITUDE = np.repeat([0.0, 0.01, 0.02], 3)
LONGITUDE = np.tile([0.0, 0.01, 0.02], 3)


def departures(days: int = 21, seed: int = 0) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """``(timestamps, [t 9])`` hourly Poisson departures."""
    times = pd.date_range("2024-03-04", periods=24 * days, freq="1h", tz="UTC")
    hour = times.hour.to_numpy()[:, None]
    west = (LONGITUDE == 0.0)[None, :]
    peak = np.where(west, np.exp(-((hour - 8) ** 2) / 4), np.exp(-((hour - 18) ** 2) / 4))
    rate = 1.0 + 6.0 * peak
    return times, np.random.default_rng(seed).poisson(rate).astype(np.int64)


def write_count_city(folder: Path, days: int = 21) -> Path:
    """The city folder (kind ``count`` declared), returned."""
    folder.mkdir(parents=True, exist_ok=True)
    times, counts = departures(days)
    wide = pd.DataFrame(counts, columns=list(ZONES))
    wide.insert(0, "timestamp", times.strftime("%Y-%m-%d %H:%M"))
    wide.to_csv(folder / "readings.csv", index=False)
    pd.DataFrame({"sensor_id": ZONES, "latitude": LATITUDE, "longitude": LONGITUDE}).to_csv(
        folder / "sensors.csv", index=False
    )
    (folder / "dataset.toml").write_text(
        'name = "grid-city"\nquantity = "departures"\nunit = "trips"\nfrequency = "1h"\n'
        'timezone = "UTC"\nkind = "count"\n',
        encoding="utf-8",
    )
    return folder


def train_count_bundle(city: Path, out: Path) -> Path:
    """``urbanflow train``: STID, one epoch, seed 0, on the city; the bundle folder."""
    args = ["train", "--dataset", str(city), "--model", "stid", "--max-epochs", "1"]
    args += ["--seed", "0", "--out", str(out)]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code in (0, None), printed.getvalue()
    return out


def count_city_with_bundle(root: Path) -> tuple[Path, Path]:
    """``(city, bundle)``: the count city written under ``root`` and a bundle trained on it."""
    city = write_count_city(root / "city")
    return city, train_count_bundle(city, root / "stid")
