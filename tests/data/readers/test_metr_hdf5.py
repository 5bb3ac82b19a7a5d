"""DCRNN HDF5 layout (METR-LA, PEMS-BAY) with the real published sensor graphs."""

from __future__ import annotations

import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from urbanflow.data.readers.metr_hdf5 import read_traffic_hdf5
from urbanflow.errors import DataError

FIXTURES = Path(__file__).parents[2] / "fixtures"
METR = FIXTURES / "metr-la-graph"
BAY = FIXTURES / "pems-bay-graph"
ADJ_PKL = METR / "adj_mx.pkl"
METR_LOCATIONS = METR / "graph_sensor_locations.csv"
BAY_DISTANCES = BAY / "distances_bay_2017.csv"
BAY_LOCATIONS = BAY / "graph_sensor_locations_bay.csv"
STEPS = 30
# DCRNN's published adj_mx_bay.pkl: 2,369 edges between distinct sensors + 325 self loops.
BAY_EDGES_WITH_SELF_LOOPS = 2694


def metr_ids() -> list[int]:
    return [int(i) for i in (METR / "graph_sensor_ids.txt").read_text().strip().split(",")]


def bay_ids() -> list[int]:
    return pd.read_csv(BAY_LOCATIONS, header=None)[0].tolist()


def write_h5(
    path: Path, sensor_ids: list[int], start: str = "2012-03-01 00:00", seed: int = 0
) -> pd.DataFrame:
    """A DCRNN-style frame: int sensor columns, naive 5-minute index, 0 = missing."""
    rng = np.random.default_rng(seed)
    values = rng.uniform(5.0, 70.0, size=(STEPS, len(sensor_ids)))
    values[rng.random(values.shape) < 0.05] = 0.0
    index = pd.date_range(start, periods=STEPS, freq="5min")
    frame = pd.DataFrame(values, index=index, columns=sensor_ids)
    frame.to_hdf(path, key="df")
    return frame


def load_pickle() -> tuple[list[str], dict[str, int], np.ndarray]:
    with ADJ_PKL.open("rb") as file:  # our own fixture: trusted
        return pickle.load(file, encoding="latin1")


@pytest.fixture
def metr_h5(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    path = tmp_path / "metr-la.h5"
    return path, write_h5(path, metr_ids())


def test_readings_timestamps_and_nulls(metr_h5: tuple[Path, pd.DataFrame]) -> None:
    path, frame = metr_h5
    dataset = read_traffic_hdf5(path)
    assert dataset.readings.shape == (STEPS, 207, 1)
    assert dataset.sensors.ids == tuple(str(i) for i in frame.columns)
    zeros = frame.to_numpy() == 0
    assert zeros.any()
    assert (np.isnan(dataset.readings[..., 0]) == zeros).all()
    np.testing.assert_allclose(dataset.readings[..., 0][~zeros], frame.to_numpy()[~zeros], 1e-6)
    assert dataset.metadata.null_value == 0.0
    assert dataset.metadata.frequency == "5min"
    assert dataset.metadata.timezone == "UTC"
    assert dataset.timestamps[0] == pd.Timestamp("2012-03-01 00:00", tz="UTC")
    assert dataset.timestamps[-1] == pd.Timestamp("2012-03-01 02:25", tz="UTC")
    assert dataset.graph.num_edges == 0
    assert not dataset.sensors.has_coordinates


def test_null_value_none_keeps_zeros(metr_h5: tuple[Path, pd.DataFrame]) -> None:
    dataset = read_traffic_hdf5(metr_h5[0], null_value=None)
    assert not np.isnan(dataset.readings).any()
    assert (dataset.readings == 0).any()
    assert dataset.metadata.null_value is None


def test_labels_stay_on_their_grid_across_daylight_saving(tmp_path: Path) -> None:
    path = tmp_path / "dst.h5"
    write_h5(path, metr_ids()[:3], start="2012-03-11 01:00")  # 02:00 LA does not exist
    as_utc = read_traffic_hdf5(path)
    assert as_utc.timestamps[12].strftime("%Y-%m-%d %H:%M") == "2012-03-11 02:00"
    local = read_traffic_hdf5(path, timezone="America/Los_Angeles")
    assert local.timestamps[0] == pd.Timestamp("2012-03-11 01:00", tz="America/Los_Angeles")
    assert (np.diff(local.timestamps.asi8) == pd.Timedelta("5min").value).all()


def test_adjacency_pickle_reordered_to_the_columns(tmp_path: Path) -> None:
    pkl_ids, id_to_index, adj = load_pickle()
    shuffled = list(np.random.default_rng(1).permutation(metr_ids()))
    path = tmp_path / "shuffled.h5"
    write_h5(path, shuffled)
    dataset = read_traffic_hdf5(path, adjacency_pkl=ADJ_PKL)
    dense = dataset.graph.to_dense()
    position = dataset.sensors.index_of()
    # a named pair: sensor 773869 and its strongest distinct neighbour in the pickle
    a = "773869"
    row = adj[id_to_index[a]].copy()
    row[id_to_index[a]] = 0
    b = pkl_ids[int(np.argmax(row))]
    assert adj[id_to_index[a], id_to_index[b]] > 0
    assert dense[position[a], position[b]] == adj[id_to_index[a], id_to_index[b]]
    order = [id_to_index[i] for i in dataset.sensors.ids]
    np.testing.assert_array_equal(dense, adj[np.ix_(order, order)])
    assert dataset.graph.num_edges == np.count_nonzero(adj) == 1722


def test_adjacency_pickle_for_a_subset_of_sensors(tmp_path: Path) -> None:
    path = tmp_path / "subset.h5"
    write_h5(path, metr_ids()[:10])
    graph = read_traffic_hdf5(path, adjacency_pkl=ADJ_PKL).graph
    _, _, adj = load_pickle()
    np.testing.assert_array_equal(graph.to_dense(), adj[:10, :10])


def test_adjacency_pickle_lacking_a_sensor(tmp_path: Path) -> None:
    path = tmp_path / "extra.h5"
    write_h5(path, [*metr_ids()[:5], 999001, 999002])
    with pytest.raises(DataError, match=r"adj_mx.pkl: 2 sensors .* not in the pickle: 999001"):
        read_traffic_hdf5(path, adjacency_pkl=ADJ_PKL)


def test_pickle_with_other_objects_is_refused(tmp_path: Path) -> None:
    h5 = tmp_path / "small.h5"
    write_h5(h5, metr_ids()[:3])
    rogue = tmp_path / "rogue.pkl"
    rogue.write_bytes(pickle.dumps([["773869"], OrderedDict(), np.eye(1)]))
    with pytest.raises(DataError, match=r"rogue.pkl: not a DCRNN adjacency pickle .*refused"):
        read_traffic_hdf5(h5, adjacency_pkl=rogue)


def test_pickle_of_the_wrong_structure(tmp_path: Path) -> None:
    h5 = tmp_path / "small.h5"
    write_h5(h5, metr_ids()[:3])
    wrong = tmp_path / "wrong.pkl"
    wrong.write_bytes(pickle.dumps({"adj": np.eye(3)}))
    with pytest.raises(DataError, match=r"wrong.pkl: expected the DCRNN list"):
        read_traffic_hdf5(h5, adjacency_pkl=wrong)


def test_pems_bay_distances_give_the_published_kernel_graph(tmp_path: Path) -> None:
    path = tmp_path / "pems-bay.h5"
    write_h5(path, bay_ids(), start="2017-01-01 00:00")
    dataset = read_traffic_hdf5(
        path,
        distances_csv=BAY_DISTANCES,
        locations_csv=BAY_LOCATIONS,
        name="pems-bay",
    )
    graph = dataset.graph
    assert graph.num_sensors == dataset.num_sensors == 325
    assert graph.num_edges == BAY_EDGES_WITH_SELF_LOOPS
    assert graph.weights.min() >= 0.1
    table = pd.read_csv(BAY_DISTANCES, header=None, names=["from", "to", "distance"])
    sigma = table["distance"].std(ddof=0)
    position = dataset.sensors.index_of()
    weights = np.exp(-((table["distance"] / sigma) ** 2))
    kept = table[weights >= 0.1]
    dense = graph.to_dense()
    for row in (0, 1000, len(table) - 1):
        source, target = str(table.at[row, "from"]), str(table.at[row, "to"])
        expected = weights[row] if weights[row] >= 0.1 else 0.0
        assert dense[position[source], position[target]] == pytest.approx(expected, rel=1e-6)
    assert len(kept) == graph.num_edges
    assert dense[position["400001"], position["400001"]] == pytest.approx(1.0)
    # headerless sensor_id,latitude,longitude locations
    assert dataset.sensors.latitude[position["400001"]] == pytest.approx(37.364085)
    assert dataset.sensors.longitude[position["400001"]] == pytest.approx(-121.901149)


def test_distances_with_header_skip_detectors_outside_the_readings(tmp_path: Path) -> None:
    ids = metr_ids()[:3]
    h5 = tmp_path / "small.h5"
    write_h5(h5, ids)
    distances = tmp_path / "distances.csv"
    rows = [(ids[0], ids[0], 0.0), (ids[1], ids[1], 0.0), (ids[2], ids[2], 0.0)]
    rows += [(ids[0], ids[1], 100.0), (ids[1], ids[2], 300.0), (ids[0], 123456, 50.0)]
    distances.write_text("from,to,distance\n" + "".join(f"{a},{b},{d}\n" for a, b, d in rows))
    graph = read_traffic_hdf5(h5, distances_csv=distances).graph
    sigma = np.std([0.0, 0.0, 0.0, 100.0, 300.0])  # the row of detector 123456 is left out
    expected = np.eye(3, dtype=np.float32)
    expected[0, 1] = np.exp(-((100.0 / sigma) ** 2))  # 300 m falls below the 0.1 threshold
    np.testing.assert_allclose(graph.to_dense(), expected, rtol=1e-6)


def test_knn_graph_from_locations_alone(metr_h5: tuple[Path, pd.DataFrame]) -> None:
    dataset = read_traffic_hdf5(metr_h5[0], locations_csv=METR_LOCATIONS)
    assert dataset.sensors.has_coordinates
    out_degree = np.bincount(dataset.graph.sources, minlength=207)
    assert out_degree.min() >= 8


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"none.h5: HDF5 readings file not found"):
        read_traffic_hdf5(tmp_path / "none.h5")


def test_not_an_hdf5_file(tmp_path: Path) -> None:
    path = tmp_path / "text.h5"
    path.write_text("hello")
    with pytest.raises(DataError, match=r"text.h5: not a readable HDF5 file"):
        read_traffic_hdf5(path)


def test_several_keys(tmp_path: Path) -> None:
    path = tmp_path / "two.h5"
    frame = write_h5(path, metr_ids()[:3])
    frame.to_hdf(path, key="other")
    with pytest.raises(
        DataError, match=r"two.h5: holds 2 pandas keys \(/df, /other\); expected exactly one"
    ):
        read_traffic_hdf5(path)


@pytest.mark.filterwarnings("ignore::pandas.errors.PerformanceWarning")
def test_non_numeric_cells_stored_as_pickles_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "text-cells.h5"
    frame = write_h5(tmp_path / "unused.h5", metr_ids()[:3])
    frame.astype(object).assign(**{str(frame.columns[1]): "fast"}).to_hdf(path, key="df")
    with pytest.raises(DataError, match=r"text-cells.h5: node .* stores Python objects"):
        read_traffic_hdf5(path)


def test_non_numeric_column_in_table_format(tmp_path: Path) -> None:
    path = tmp_path / "table.h5"
    frame = write_h5(tmp_path / "unused.h5", metr_ids()[:3])
    frame[frame.columns[2]] = "slow"
    frame.columns = [str(c) for c in frame.columns]
    frame.to_hdf(path, key="df", format="table")
    with pytest.raises(DataError, match=rf"table.h5: column {frame.columns[2]} holds non-numeric"):
        read_traffic_hdf5(path)


def test_index_must_be_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "rows.h5"
    pd.DataFrame(np.ones((4, 2)), columns=[1, 2]).to_hdf(path, key="df")
    with pytest.raises(DataError, match=r"rows.h5: the DataFrame index is not timestamps"):
        read_traffic_hdf5(path)


def test_index_must_be_regular(tmp_path: Path) -> None:
    path = tmp_path / "gap.h5"
    index = pd.DatetimeIndex(["2012-03-01 00:00", "2012-03-01 00:05", "2012-03-01 00:15"])
    pd.DataFrame(np.ones((3, 2)), index=index, columns=[1, 2]).to_hdf(path, key="df")
    with pytest.raises(DataError, match=r"gap.h5: the index is not one regular .*row 2"):
        read_traffic_hdf5(path)


def test_pickle_and_distances_together(metr_h5: tuple[Path, pd.DataFrame]) -> None:
    with pytest.raises(DataError, match=r"pass only one of adjacency_pkl and distances_csv"):
        read_traffic_hdf5(metr_h5[0], adjacency_pkl=ADJ_PKL, distances_csv=BAY_DISTANCES)


def test_sensor_without_location(tmp_path: Path) -> None:
    path = tmp_path / "unlocated.h5"
    write_h5(path, [*metr_ids()[:2], *range(900001, 900008)])
    message = r"no location for 7 sensors .*: 900001, .*, 900005 and 2 more; add a row"
    with pytest.raises(DataError, match=message):
        read_traffic_hdf5(path, locations_csv=METR_LOCATIONS)
