"""LargeST layout: a tiny CA folder written the way the release is (fixed-format pandas HDF5
under key t, ca_meta.csv, ca_rn_adj.npy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from urbanflow.data.catalog import load_dataset
from urbanflow.data.dataset import CityDataset
from urbanflow.data.readers.largest import read_largest
from urbanflow.errors import DataError

IDS = ["715898", "715918", "716040", "1100001"]
STEPS = 13
META = pd.DataFrame(
    {
        "ID": [int(i) for i in IDS],
        "Lat": [33.90, 33.91, 34.05, 32.71],
        "Lng": [-118.10, -118.11, -118.25, -117.16],
        "District": [7, 7, 7, 11],
        "County": ["Los Angeles", "Los Angeles", "Los Angeles", "San Diego"],
        "Fwy": ["I-5", "I-5", "US101", "I-8"],
        "Lanes": [4, 4, 3, 2],
        "Type": ["Mainline"] * 4,
        "Direction": ["S", "N", "E", "W"],
        "ID2": [0, 1, 2, 3],
    }
)


def adjacency() -> np.ndarray:
    """Self-loops of 1, a few road links in meta order, zeros elsewhere."""
    matrix = np.eye(len(IDS), dtype=np.float32)
    matrix[0, 1], matrix[1, 0], matrix[1, 2] = 0.5, 0.25, 0.75
    return matrix


def flows(year: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 400, size=(STEPS, len(IDS))).astype(np.float64)
    values[3, 2] = np.nan
    values[5, 0] = 0.0
    index = pd.date_range(f"{year}-01-01 00:00", periods=STEPS, freq="5min")
    return pd.DataFrame(values, index=index, columns=IDS)


def write_largest(
    folder: Path,
    years: tuple[int, ...] = (2019,),
    *,
    frame: pd.DataFrame | None = None,
    meta: pd.DataFrame | None = META,
    matrix: np.ndarray | None = None,
) -> dict[int, pd.DataFrame]:
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for position, year in enumerate(years):
        written[year] = flows(year, seed=position) if frame is None else frame
        written[year].to_hdf(folder / f"ca_his_raw_{year}.h5", key="t")
    if meta is not None:
        meta.to_csv(folder / "ca_meta.csv", index=False)
    np.save(folder / "ca_rn_adj.npy", adjacency() if matrix is None else matrix)
    return written


def edge_set(dataset: CityDataset) -> dict[tuple[str, str], float]:
    graph = dataset.graph.to_scipy().tocoo()
    ids = dataset.sensors.ids
    return {
        (ids[r], ids[c]): float(w) for r, c, w in zip(graph.row, graph.col, graph.data, strict=True)
    }


def test_values_coordinates_edges_and_metadata(tmp_path: Path) -> None:
    frame = write_largest(tmp_path)[2019]
    dataset = read_largest(tmp_path)
    assert dataset.readings.dtype == np.float32
    assert dataset.readings.shape == (STEPS, len(IDS), 1)
    np.testing.assert_array_equal(dataset.readings[:, :, 0], frame.to_numpy(np.float32))
    assert np.isnan(dataset.readings[3, 2, 0]) and dataset.readings[5, 0, 0] == 0.0
    assert dataset.sensors.ids == tuple(IDS)
    np.testing.assert_allclose(dataset.sensors.latitude, META["Lat"])
    np.testing.assert_allclose(dataset.sensors.longitude, META["Lng"])
    assert edge_set(dataset) == {
        **{(i, i): 1.0 for i in IDS},
        ("715898", "715918"): 0.5,
        ("715918", "715898"): 0.25,
        ("715918", "716040"): 0.75,
    }
    assert str(dataset.timestamps.tz) == "America/Los_Angeles"
    assert dataset.timestamps[0] == pd.Timestamp("2019-01-01 00:00", tz="America/Los_Angeles")
    meta = dataset.metadata
    assert (meta.quantity, meta.unit, meta.kind, meta.frequency) == (
        "flow",
        "vehicles/5min",
        "count",
        "5min",
    )
    assert "CC BY-NC 4.0" in meta.licence and "ca_his_raw_2019.h5" in meta.source


def test_chunked_reading_matches_one_chunk(tmp_path: Path) -> None:
    write_largest(tmp_path)
    whole = read_largest(tmp_path, chunk_rows=STEPS + 10)
    for rows in (1, 2, 5):
        chunked = read_largest(tmp_path, chunk_rows=rows)
        np.testing.assert_array_equal(chunked.readings, whole.readings)
        assert chunked.timestamps.equals(whole.timestamps)


def test_columns_in_another_order_than_meta(tmp_path: Path) -> None:
    shuffled = flows(2019)[[IDS[2], IDS[0], IDS[3], IDS[1]]]
    write_largest(tmp_path, frame=shuffled)
    dataset = read_largest(tmp_path, chunk_rows=4)
    assert dataset.sensors.ids == (IDS[2], IDS[0], IDS[3], IDS[1])
    np.testing.assert_allclose(dataset.sensors.latitude, META["Lat"].to_numpy()[[2, 0, 3, 1]])
    np.testing.assert_array_equal(dataset.readings[:, :, 0], shuffled.to_numpy(np.float32))
    assert edge_set(dataset)[("715918", "716040")] == 0.75


def test_latest_year_by_default_and_a_chosen_year(tmp_path: Path) -> None:
    written = write_largest(tmp_path, years=(2018, 2019, 2020))
    assert read_largest(tmp_path).timestamps[0].year == 2020
    chosen = read_largest(tmp_path, year=2018)
    np.testing.assert_array_equal(chosen.readings[:, :, 0], written[2018].to_numpy(np.float32))
    with pytest.raises(DataError, match=r"no ca_his_raw_2021\.h5; years present: 2018, 2019"):
        read_largest(tmp_path, year=2021)


def test_catalog_recognises_the_folder_and_a_year_file(tmp_path: Path) -> None:
    write_largest(tmp_path / "largest", years=(2019, 2020))
    assert load_dataset(tmp_path / "largest").timestamps[0].year == 2020
    by_file = load_dataset(tmp_path / "largest" / "ca_his_raw_2019.h5")
    assert by_file.timestamps[0].year == 2019
    assert by_file.metadata.name == "largest-ca"


def test_null_value_option(tmp_path: Path) -> None:
    write_largest(tmp_path)
    dataset = read_largest(tmp_path, null_value=0.0)
    assert np.isnan(dataset.readings[5, 0, 0])


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("ca_meta.csv", r"ca_meta\.csv: LargeST sensor metadata not found; download"),
        ("ca_rn_adj.npy", r"ca_rn_adj\.npy: LargeST adjacency matrix not found; download"),
        ("ca_his_raw_2019.h5", r"no ca_his_raw_YYYY\.h5 readings file; download"),
    ],
)
def test_missing_files(tmp_path: Path, missing: str, message: str) -> None:
    write_largest(tmp_path)
    (tmp_path / missing).unlink()
    with pytest.raises(DataError, match=message):
        read_largest(tmp_path)


def test_meta_count_differs_from_readings(tmp_path: Path) -> None:
    write_largest(tmp_path, frame=flows(2019)[IDS[:3]], matrix=adjacency())
    with pytest.raises(DataError, match=r"3 sensor columns but ca_meta\.csv lists 4 sensors"):
        read_largest(tmp_path)


def test_adjacency_size_differs_from_meta(tmp_path: Path) -> None:
    write_largest(tmp_path, matrix=np.eye(3))
    with pytest.raises(DataError, match=r"ca_rn_adj\.npy: 3 sensors but ca_meta\.csv lists 4"):
        read_largest(tmp_path)


def test_column_not_in_meta(tmp_path: Path) -> None:
    write_largest(tmp_path, frame=flows(2019).rename(columns={"716040": "999999"}))
    with pytest.raises(DataError, match=r"1 sensor columns are not in ca_meta\.csv: 999999"):
        read_largest(tmp_path)


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        (np.ones((4, 3)), r"shape \(4, 3\); expected a square"),
        (-np.eye(4), r"ca_rn_adj\.npy: edge weights must be finite and ≥ 0"),
    ],
)
def test_bad_adjacency(tmp_path: Path, matrix: np.ndarray, message: str) -> None:
    write_largest(tmp_path, matrix=matrix)
    with pytest.raises(DataError, match=message):
        read_largest(tmp_path)


def test_meta_without_coordinates(tmp_path: Path) -> None:
    write_largest(tmp_path, meta=META.drop(columns=["Lng"]))
    with pytest.raises(DataError, match=r"ca_meta\.csv: lacks column Lng"):
        read_largest(tmp_path)


def test_irregular_index(tmp_path: Path) -> None:
    frame = flows(2019)
    frame.index = frame.index.delete(4).append(pd.DatetimeIndex(["2019-01-02"]))
    write_largest(tmp_path, frame=frame)
    with pytest.raises(DataError, match=r"not one regular increasing grid \(row 4"):
        read_largest(tmp_path, chunk_rows=3)


def test_not_hdf5(tmp_path: Path) -> None:
    write_largest(tmp_path)
    (tmp_path / "ca_his_raw_2019.h5").write_bytes(b"not hdf5")
    with pytest.raises(DataError, match=r"ca_his_raw_2019\.h5: not a readable HDF5 file"):
        read_largest(tmp_path)
