"""Wide Parquet read straight onto the grid: the same dataset and errors as the long frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from urbanflow.data.readers import city_folder
from urbanflow.data.readers.city_folder import read_city_folder
from urbanflow.errors import DataError

# sensors.csv in another order than the columns, and a sensor without readings (d)
SENSORS = """\
sensor_id,latitude,longitude
c,34.0500,-118.2400
d,34.0700,-118.2300
a,34.0500,-118.2500
b,34.0600,-118.2500
"""
NULL = 'null_value = -1\ntimezone = "Europe/Paris"\n'


def wide_frame() -> pd.DataFrame:
    """Eight 5-minute steps less one (a gap), rows unsorted, NaN and null (-1) cells."""
    times = pd.date_range("2024-01-01 00:00", periods=8, freq="5min").delete(5)
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "a": rng.normal(50, 10, len(times)),
            "b": rng.normal(50, 10, len(times)).astype(np.float32),
            "c": np.arange(len(times), dtype=np.int64),
        }
    )
    frame.loc[1, "a"] = np.nan
    frame.loc[3, "b"] = np.nan
    frame.loc[[0, 4], "a"] = -1.0
    frame.loc[2, "c"] = -1
    frame.insert(0, "timestamp", times.strftime("%Y-%m-%d %H:%M"))
    return frame.iloc[[2, 0, 1, 3, 6, 4, 5]].reset_index(drop=True)


def general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the reader decline the wide-Parquet path, as before it existed."""
    monkeypatch.setattr(city_folder, "_wide_parquet_columns", lambda path: None)


def fast_path_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the general path fail, so a read that succeeds took the wide-Parquet path."""

    def refuse(*args: object) -> None:
        raise AssertionError("the general path was used")

    monkeypatch.setattr(city_folder, "_read_readings", refuse)


def write(folder: Path, frame: pd.DataFrame, toml: str = NULL) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(folder / "readings.parquet", index=False)
    (folder / "sensors.csv").write_text(SENSORS, encoding="utf-8")
    (folder / "dataset.toml").write_text(toml, encoding="utf-8")
    return folder


@pytest.mark.parametrize("native_times", [False, True])
def test_fast_path_gives_the_same_dataset_as_the_long_frame(tmp_path, monkeypatch, native_times):
    frame = wide_frame()
    if native_times:
        stamps = pd.to_datetime(frame["timestamp"]).dt.tz_localize("Europe/Paris")
        frame = frame.assign(timestamp=stamps)
    folder = write(tmp_path / "my-city", frame)
    with monkeypatch.context() as patch:
        fast_path_only(patch)
        fast = read_city_folder(folder)
    with monkeypatch.context() as patch:
        general_path(patch)
        slow = read_city_folder(folder)
    assert fast.readings.dtype == np.float32 and fast.readings.shape == (8, 4, 1)
    np.testing.assert_array_equal(fast.readings, slow.readings)  # NaN where NaN
    assert np.isnan(fast.readings[:, 1]).all()  # d: no column
    assert np.isnan(fast.readings[5]).all()  # the gap
    assert np.isnan(fast.readings[0, 2, 0]) and np.isnan(fast.readings[2, 0, 0])  # null value
    pd.testing.assert_index_equal(fast.timestamps, slow.timestamps)
    assert fast.sensors.ids == slow.sensors.ids == ("c", "d", "a", "b")
    assert fast.metadata == slow.metadata
    assert fast.fingerprint == slow.fingerprint


def broken(change: str) -> pd.DataFrame:
    frame = wide_frame()
    text = frame["timestamp"].astype(object)
    if change == "duplicate":
        frame = pd.concat([frame, frame.iloc[[3, 1]]], ignore_index=True)
    elif change == "unknown":
        frame = frame.assign(zz=1.0, yy=2.0)
    elif change == "unparseable":
        text[4] = "tomorrow"
        frame["timestamp"] = text
    elif change == "empty timestamp":
        text[3] = None
        frame["timestamp"] = text
    elif change == "off grid":
        text[4] = "2024-01-01 00:32"
        frame["timestamp"] = text
    elif change == "infinite":
        frame.loc[5, "b"] = np.inf
    elif change == "infinite and unknown":
        frame = frame.assign(zz=np.inf)
    elif change == "text values":
        frame["b"] = frame["b"].astype(str)
        frame.loc[4, "b"] = "n/a"
    elif change == "nonexistent":
        text[4] = "2024-03-31 02:30"
        frame["timestamp"] = text
    return frame


@pytest.mark.parametrize(
    "change",
    [
        "duplicate",
        "unknown",
        "unparseable",
        "empty timestamp",
        "off grid",
        "infinite",
        "infinite and unknown",
        "text values",
        "nonexistent",
    ],
)
def test_fast_path_raises_the_same_errors(tmp_path, monkeypatch, change):
    folder = write(tmp_path / "my-city", broken(change))
    with pytest.raises(DataError) as fast:
        read_city_folder(folder)
    with monkeypatch.context() as patch:
        general_path(patch)
        with pytest.raises(DataError) as slow:
            read_city_folder(folder)
    assert str(fast.value) == str(slow.value)
    assert str(fast.value).startswith("readings.parquet: ")


def test_two_unknown_columns_and_a_bad_time_name_the_columns(tmp_path):
    frame = broken("unknown")
    frame.loc[0, "timestamp"] = "tomorrow"
    with pytest.raises(
        DataError, match=r"^readings\.parquet: readings for 2 sensor\(s\) .*: yy, zz;"
    ):
        read_city_folder(write(tmp_path / "my-city", frame))


def test_duplicate_names_the_first_sensor_in_sensors_csv_order(tmp_path):
    frame = broken("duplicate")
    with pytest.raises(DataError, match=r"^readings\.parquet: sensor 'c' has two readings at "):
        read_city_folder(write(tmp_path / "my-city", frame))


def test_batches_of_columns_give_the_same_readings(tmp_path, monkeypatch):
    folder = write(tmp_path / "my-city", wide_frame())
    whole = read_city_folder(folder)
    monkeypatch.setattr(city_folder, "WIDE_BATCH_CELLS", 1)  # one column at a time
    fast_path_only(monkeypatch)
    np.testing.assert_array_equal(read_city_folder(folder).readings, whole.readings)


def test_infinite_readings_are_found_in_any_block_of_steps(monkeypatch):
    from urbanflow.data import dataset

    monkeypatch.setattr(dataset, "INF_CHECK_CELLS", 4)  # two steps of two sensors a block
    readings = np.zeros((5, 2, 1), np.float32)
    assert not dataset._any_infinite(readings)
    readings[4, 1, 0] = -np.inf
    assert dataset._any_infinite(readings)
