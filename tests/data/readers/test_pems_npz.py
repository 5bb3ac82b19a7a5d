"""PEMS03/04/07/08 NPZ layout: ``data`` [t n c], distances by index (or by id for PEMS03)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from urbanflow.data.readers.pems_npz import PEMS_START, PEMS_TIMEZONE, read_pems_npz
from urbanflow.errors import DataError

STEPS, SENSORS = 12, 5
EDGES = [(0, 1, 400.0), (1, 2, 900.0), (2, 3, 2500.0), (3, 4, 600.0), (4, 0, 1200.0)]


def write_npz(path: Path, channels: int = 3, seed: int = 0) -> np.ndarray:
    data = np.random.default_rng(seed).uniform(0, 300, size=(STEPS, SENSORS, channels))
    np.savez(path, data=data)
    return data


def write_distances(path: Path, rows: list[tuple[object, object, float]], header: str) -> Path:
    path.write_text(header + "\n" + "".join(f"{a},{b},{d}\n" for a, b, d in rows))
    return path


@pytest.fixture
def pems04(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    data = write_npz(tmp_path / "PEMS04.npz")
    distances = write_distances(tmp_path / "PEMS04.csv", EDGES, "from,to,cost")
    return tmp_path / "PEMS04.npz", distances, data


def test_readings_channels_and_metadata(pems04: tuple[Path, Path, np.ndarray]) -> None:
    npz, distances, data = pems04
    dataset = read_pems_npz(npz, distances_csv=distances, start=PEMS_START["pems04"])
    assert dataset.readings.shape == (STEPS, SENSORS, 3)
    np.testing.assert_allclose(dataset.readings, data.astype(np.float32))
    assert dataset.metadata.channels == ("flow", "occupancy", "speed")
    assert dataset.metadata.quantity == "flow"
    assert dataset.metadata.unit == "vehicles/5min"
    assert dataset.metadata.name == "pems04"
    assert dataset.metadata.null_value is None
    assert dataset.sensors.ids == ("0", "1", "2", "3", "4")
    assert not dataset.sensors.has_coordinates
    assert np.isnan(dataset.sensors.latitude).all()


def test_timestamps_from_the_release_start(pems04: tuple[Path, Path, np.ndarray]) -> None:
    npz, _, _ = pems04
    dataset = read_pems_npz(npz, start=PEMS_START["pems08"], timezone=PEMS_TIMEZONE)
    assert dataset.timestamps[0] == pd.Timestamp("2016-07-01 00:00", tz=PEMS_TIMEZONE)
    assert dataset.timestamps[-1] == pd.Timestamp("2016-07-01 00:55", tz=PEMS_TIMEZONE)
    assert dataset.metadata.timezone == PEMS_TIMEZONE
    assert dataset.metadata.frequency == "5min"
    assert dataset.graph.num_edges == 0


def test_release_start_dates() -> None:
    assert PEMS_START == {
        "pems03": "2018-09-01",
        "pems04": "2018-01-01",
        "pems07": "2017-05-01",
        "pems08": "2016-07-01",
    }


def test_graph_links_listed_pairs_both_ways(pems04: tuple[Path, Path, np.ndarray]) -> None:
    npz, distances, _ = pems04
    graph = read_pems_npz(npz, distances_csv=distances, start="2018-01-01").graph
    expected = np.zeros((SENSORS, SENSORS))
    for a, b, _ in EDGES:
        expected[a, b] = expected[b, a] = 1.0
    # every listed pair is kept, even 2.5 km, which a kernel with σ from them would drop
    assert graph.num_edges == 2 * len(EDGES)
    np.testing.assert_array_equal(graph.to_dense(), expected)


def test_flow_only_release(tmp_path: Path) -> None:
    write_npz(tmp_path / "PEMS07.npz", channels=1)
    dataset = read_pems_npz(tmp_path / "PEMS07.npz", start=PEMS_START["pems07"], name="pems07")
    assert dataset.readings.shape == (STEPS, SENSORS, 1)
    assert dataset.metadata.channels == ("flow",)


def test_sensor_ids_from_an_id_file(tmp_path: Path) -> None:
    write_npz(tmp_path / "PEMS03.npz", channels=1)
    ids = ["317842", "318120", "318121", "319933", "315961"]
    (tmp_path / "PEMS03.txt").write_text("\n".join(ids) + "\n\n")
    rows = [(ids[a], ids[b], d) for a, b, d in EDGES]
    distances = write_distances(tmp_path / "PEMS03.csv", rows, "from,to,distance")
    dataset = read_pems_npz(
        tmp_path / "PEMS03.npz",
        distances_csv=distances,
        start=PEMS_START["pems03"],
        name="pems03",
        id_filename=tmp_path / "PEMS03.txt",
    )
    assert dataset.sensors.ids == tuple(ids)
    assert dataset.graph.to_dense()[0, 1] == dataset.graph.to_dense()[1, 0] == 1.0


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"PEMS09.npz: PEMS .npz file not found"):
        read_pems_npz(tmp_path / "PEMS09.npz", start="2018-01-01")


def test_missing_data_key(tmp_path: Path) -> None:
    np.savez(tmp_path / "wrong.npz", flow=np.ones((2, 2, 1)))
    with pytest.raises(DataError, match=r"wrong.npz: no 'data' array \(keys: flow\)"):
        read_pems_npz(tmp_path / "wrong.npz", start="2018-01-01")


@pytest.mark.parametrize("shape", [(STEPS, SENSORS), (STEPS, SENSORS, 2), (0, SENSORS, 3)])
def test_wrong_shape(tmp_path: Path, shape: tuple[int, ...]) -> None:
    np.savez(tmp_path / "shape.npz", data=np.ones(shape))
    with pytest.raises(DataError, match=rf"shape.npz: 'data' has shape \({shape[0]}, "):
        read_pems_npz(tmp_path / "shape.npz", start="2018-01-01")


def test_npy_instead_of_npz(tmp_path: Path) -> None:
    np.save(tmp_path / "plain.npy", np.ones((2, 2, 1)))
    with pytest.raises(DataError, match=r"plain.npy: a single .npy array, not an .npz archive"):
        read_pems_npz(tmp_path / "plain.npy", start="2018-01-01")


def test_object_arrays_are_not_unpickled(tmp_path: Path) -> None:
    np.savez(tmp_path / "objects.npz", data=np.array([[["a"]]], dtype=object))
    with pytest.raises(DataError, match=r"objects.npz: not a readable .npz archive of numbers"):
        read_pems_npz(tmp_path / "objects.npz", start="2018-01-01")


def test_text_values_are_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "text.npz", data=np.full((2, 2, 1), "x"))
    with pytest.raises(DataError, match=r"text.npz: 'data' holds <U1 values, not numbers"):
        read_pems_npz(tmp_path / "text.npz", start="2018-01-01")


def test_distance_rows_naming_unknown_sensors(pems04: tuple[Path, Path, np.ndarray]) -> None:
    npz, _, _ = pems04
    rows = [*EDGES, *((0, 100 + i, 10.0) for i in range(7))]
    distances = write_distances(npz.with_name("bad.csv"), rows, "from,to,cost")
    message = r"bad.csv: rows name 7 sensors .*: 100, 101, 102, 103, 104 and 2 more; use"
    with pytest.raises(DataError, match=message):
        read_pems_npz(npz, distances_csv=distances, start="2018-01-01")


def test_distance_header_not_understood(pems04: tuple[Path, Path, np.ndarray]) -> None:
    npz, _, _ = pems04
    distances = write_distances(npz.with_name("odd.csv"), EDGES, "a,b,c")
    with pytest.raises(DataError, match=r"odd.csv: header a,b,c is not understood"):
        read_pems_npz(npz, distances_csv=distances, start="2018-01-01")


def test_non_numeric_distance(pems04: tuple[Path, Path, np.ndarray]) -> None:
    npz, _, _ = pems04
    distances = npz.with_name("text.csv")
    distances.write_text("from,to,cost\n0,1,far\n")
    with pytest.raises(DataError, match=r"text.csv: line 2 has distance 'far', not a number"):
        read_pems_npz(npz, distances_csv=distances, start="2018-01-01")


def test_id_file_of_the_wrong_length(tmp_path: Path) -> None:
    write_npz(tmp_path / "PEMS03.npz", channels=1)
    (tmp_path / "PEMS03.txt").write_text("1\n2\n3\n")
    with pytest.raises(DataError, match=r"PEMS03.txt: 3 sensor ids but the readings have 5"):
        read_pems_npz(
            tmp_path / "PEMS03.npz", start="2018-09-01", id_filename=tmp_path / "PEMS03.txt"
        )
