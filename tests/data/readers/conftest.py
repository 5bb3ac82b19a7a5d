"""Builders for the reader tests: small city folders written into ``tmp_path``."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

FileContent = str | bytes | pd.DataFrame | None
FolderWriter = Callable[..., Path]

SENSORS_CSV = """\
sensor_id,latitude,longitude,name
a,34.0500,-118.2500,Main St
b,34.0600,-118.2500,Second St
c,34.0500,-118.2400,Hill St
"""


def write_file(path: Path, content: FileContent) -> None:
    """Text (dedented) and bytes as they are; a frame as CSV or Parquet by the suffix;
    None: no such file (removed if an earlier write made it)."""
    if content is None:
        path.unlink(missing_ok=True)
        return
    if isinstance(content, pd.DataFrame):
        if path.suffix == ".parquet":
            content.to_parquet(path, index=False)
        else:
            content.to_csv(path, index=False)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(textwrap.dedent(content), encoding="utf-8")


def write_city(
    folder: Path,
    readings: FileContent,
    *,
    readings_name: str = "readings.csv",
    sensors: FileContent = SENSORS_CSV,
    edges: FileContent = None,
    toml: FileContent = None,
) -> Path:
    """A city folder; a file given as None is absent."""
    folder.mkdir(parents=True, exist_ok=True)
    write_file(folder / readings_name, readings)
    write_file(folder / "sensors.csv", sensors)
    write_file(folder / "edges.csv", edges)
    write_file(folder / "dataset.toml", toml)
    return folder


def wide_readings(
    steps: int = 6, start: str = "2024-01-01 00:00", frequency: str = "5min"
) -> pd.DataFrame:
    """``timestamp,a,b,c`` as text and floats, sensor b missing at step 2."""
    times = pd.date_range(start, periods=steps, freq=frequency)
    values = 10.0 * np.arange(steps)[:, None] + np.arange(3)[None, :]
    frame = pd.DataFrame(values, columns=["a", "b", "c"])
    frame.loc[2, "b"] = np.nan
    frame.insert(0, "timestamp", times.strftime("%Y-%m-%d %H:%M"))
    return frame


def to_long(wide: pd.DataFrame) -> pd.DataFrame:
    """The same readings as ``timestamp,sensor_id,value`` rows, by time then sensor."""
    long = wide.melt(id_vars="timestamp", var_name="sensor_id", value_name="value")
    return long.sort_values(["timestamp", "sensor_id"], kind="stable").reset_index(drop=True)


def csv_rows(header: str, rows: list[str]) -> str:
    return "\n".join([header, *rows]) + "\n"


@pytest.fixture
def city(tmp_path: Path) -> FolderWriter:
    """``city(readings, sensors=..., edges=..., toml=...)`` writes ``tmp_path/my-city``."""

    def make(readings: FileContent, **files: FileContent) -> Path:
        return write_city(tmp_path / "my-city", readings, **files)

    return make


@pytest.fixture
def wide() -> pd.DataFrame:
    """Six 5-minute steps of three sensors, one missing reading."""
    return wide_readings()


@pytest.fixture
def long_from() -> Callable[[pd.DataFrame], pd.DataFrame]:
    return to_long


@pytest.fixture
def rows() -> Callable[[str, list[str]], str]:
    """``rows(header, lines)``: CSV text."""
    return csv_rows
