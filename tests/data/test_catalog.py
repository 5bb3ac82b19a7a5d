import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from urbanflow.data.catalog import dataset_names, load_dataset
from urbanflow.errors import DataError, UnknownNameError

FIXTURES = Path(__file__).parents[1] / "fixtures"


@pytest.fixture(scope="module")
def los_loop():
    return load_dataset("los-loop")


def test_names_list_embedded_and_downloadable():
    assert dataset_names()[:1] == ["los-loop"]
    assert {"metr-la", "pems-bay", "pems04", "pems08"} <= set(dataset_names())


def test_tgcn_release_folder_reads_like_the_embedded_copy(los_loop, tmp_path):
    # write Los-loop back out in the T-GCN release layout and read it by path
    speeds = pd.DataFrame(los_loop.readings[..., 0], columns=list(los_loop.sensors.ids))
    speeds.to_csv(tmp_path / "los_speed.csv", index=False)
    pd.DataFrame(los_loop.graph.to_dense()).to_csv(
        tmp_path / "los_adj.csv", index=False, header=False
    )
    copy = load_dataset(tmp_path)
    np.testing.assert_array_equal(copy.readings, los_loop.readings)
    assert (copy.timestamps == los_loop.timestamps).all()
    np.testing.assert_allclose(copy.graph.to_dense(), los_loop.graph.to_dense(), rtol=1e-6)


def test_downloaded_pems08_is_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("URBANFLOW_CACHE", str(tmp_path))
    with pytest.raises(DataError, match="urbanflow datasets download pems08"):
        load_dataset("pems08")
    folder = tmp_path / "datasets" / "pems08"
    folder.mkdir(parents=True)
    data = np.random.default_rng(0).uniform(0, 300, size=(40, 4, 3)).astype(np.float32)
    np.savez(folder / "PEMS08.npz", data=data)
    (folder / "PEMS08.csv").write_text("from,to,cost\n0,1,500.0\n1,2,800.0\n2,3,650.0\n")
    dataset = load_dataset("pems08")
    assert dataset.readings.shape == (40, 4, 3)
    assert dataset.metadata.channels == ("flow", "occupancy", "speed")
    assert str(dataset.timestamps[0].date()) == "2016-07-01"
    assert dataset.graph.num_edges > 0


def test_downloaded_metr_la_is_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("URBANFLOW_CACHE", str(tmp_path))
    folder = tmp_path / "datasets" / "metr-la"
    folder.mkdir(parents=True)
    ids = (FIXTURES / "metr-la-graph" / "graph_sensor_ids.txt").read_text().strip().split(",")
    frame = pd.DataFrame(
        np.full((24, len(ids)), 55.0),
        columns=[int(i) for i in ids],
        index=pd.date_range("2012-03-01", periods=24, freq="5min"),
    )
    frame.iloc[3, 5] = 0.0  # 0 = detector failed
    frame.to_hdf(folder / "metr-la.h5", key="df")
    shutil.copy(FIXTURES / "metr-la-graph" / "adj_mx.pkl", folder / "adj_mx.pkl")
    shutil.copy(
        FIXTURES / "metr-la-graph" / "graph_sensor_locations.csv",
        folder / "graph_sensor_locations.csv",
    )
    dataset = load_dataset("metr-la")
    assert dataset.readings.shape == (24, 207, 1)
    assert np.isnan(dataset.readings[3, 5, 0])
    assert dataset.metadata.null_value == 0.0
    assert dataset.sensors.has_coordinates
    assert dataset.graph.num_edges == 1722


def test_unknown_names_and_layouts(tmp_path):
    with pytest.raises(UnknownNameError, match="los-loop"):
        load_dataset("no-such-dataset")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="not a layout"):
        load_dataset(tmp_path)
    np.savez(tmp_path / "mine.npz", data=np.zeros((5, 2, 1)))
    with pytest.raises(DataError, match="start time"):
        load_dataset(tmp_path / "mine.npz")
