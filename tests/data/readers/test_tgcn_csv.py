"""T-GCN layout: header of sensor ids, rows of speeds, headerless N×N adjacency."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from urbanflow.data.readers.tgcn_csv import LOS_LOOP_START, LOS_LOOP_TIMEZONE, read_tgcn_csv
from urbanflow.errors import DataError

FIXTURES = Path(__file__).parents[2] / "fixtures"
METR_LOCATIONS = FIXTURES / "metr-la-graph" / "graph_sensor_locations.csv"
IDS = ("773869", "767541", "767542", "717447")
ADJACENCY = np.array(
    [
        [1.0, 0.5, 0.0, 0.0],
        [0.5, 1.0, 0.25, 0.0],
        [0.0, 0.25, 1.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def write_pair(folder: Path, steps: int = 6) -> tuple[Path, Path]:
    speeds = folder / "speed.csv"
    lines = [",".join(IDS)]
    for t in range(steps):
        cells = [f"{60 + t + j / 10:.1f}" for j in range(len(IDS))]
        if t == 2:
            cells[1] = ""  # a missing reading
        lines.append(",".join(cells))
    speeds.write_text("\n".join(lines) + "\n")
    adjacency = folder / "adj.csv"
    np.savetxt(adjacency, ADJACENCY, delimiter=",", fmt="%g")
    return speeds, adjacency


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    return write_pair(tmp_path)


def test_reads_readings_sensors_and_metadata(pair: tuple[Path, Path]) -> None:
    dataset = read_tgcn_csv(*pair, start="2012-03-01 00:00", name="los-mini")
    assert dataset.readings.shape == (6, 4, 1)
    assert dataset.sensors.ids == IDS
    assert dataset.readings[0, :, 0] == pytest.approx([60.0, 60.1, 60.2, 60.3])
    assert np.isnan(dataset.readings[2, 1, 0])
    assert np.isnan(dataset.readings).sum() == 1
    assert not dataset.sensors.has_coordinates
    assert dataset.metadata.name == "los-mini"
    assert dataset.metadata.quantity == "speed"
    assert dataset.metadata.unit == "mph"
    assert dataset.metadata.channels == ("speed",)
    assert dataset.metadata.frequency == "5min"


def test_timestamps_start_in_the_given_timezone(pair: tuple[Path, Path]) -> None:
    dataset = read_tgcn_csv(*pair, start=LOS_LOOP_START, timezone=LOS_LOOP_TIMEZONE)
    assert str(dataset.timestamps.tz) == "America/Los_Angeles"
    assert dataset.timestamps[0] == pd.Timestamp("2012-03-01 08:00", tz="UTC")
    assert dataset.timestamps[-1] == pd.Timestamp("2012-03-01 08:25", tz="UTC")
    assert dataset.metadata.timezone == LOS_LOOP_TIMEZONE


def test_grid_stays_regular_across_a_daylight_saving_change(pair: tuple[Path, Path]) -> None:
    dataset = read_tgcn_csv(
        *pair, start="2012-03-11 01:50", frequency="5min", timezone="America/Los_Angeles"
    )
    assert (np.diff(dataset.timestamps.asi8) == pd.Timedelta("5min").value).all()
    assert dataset.timestamps[2].strftime("%H:%M") == "03:00"  # 02:00 does not exist that day


def test_graph_is_the_nonzero_weights(pair: tuple[Path, Path]) -> None:
    graph = read_tgcn_csv(*pair, start="2012-03-01").graph
    assert graph.num_sensors == 4
    assert graph.num_edges == np.count_nonzero(ADJACENCY)
    np.testing.assert_allclose(graph.to_dense(), ADJACENCY)


def test_locations_matched_by_sensor_id(pair: tuple[Path, Path]) -> None:
    dataset = read_tgcn_csv(*pair, start="2012-03-01", locations_csv=METR_LOCATIONS)
    assert dataset.sensors.has_coordinates
    assert dataset.sensors.latitude[0] == pytest.approx(34.15497)
    assert dataset.sensors.longitude[0] == pytest.approx(-118.31829)
    locations = pd.read_csv(METR_LOCATIONS, dtype={"sensor_id": str}).set_index("sensor_id")
    np.testing.assert_allclose(dataset.sensors.latitude, locations.loc[list(IDS), "latitude"])


def test_sensor_without_location_is_named(tmp_path: Path) -> None:
    speeds, adjacency = write_pair(tmp_path)
    speeds.write_text(speeds.read_text().replace("717447", "999999", 1))
    with pytest.raises(DataError, match=r"graph_sensor_locations.csv: no location .*999999"):
        read_tgcn_csv(speeds, adjacency, start="2012-03-01", locations_csv=METR_LOCATIONS)


def test_missing_file(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    with pytest.raises(DataError, match=r"nope.csv: T-GCN speed CSV not found"):
        read_tgcn_csv(tmp_path / "nope.csv", pair[1], start="2012-03-01")


def test_adjacency_size_must_match_the_sensor_columns(tmp_path: Path) -> None:
    speeds, adjacency = write_pair(tmp_path)
    np.savetxt(adjacency, ADJACENCY[:3, :3], delimiter=",")
    with pytest.raises(DataError, match=r"adj.csv: adjacency is 3×3 but .* 4 sensor columns"):
        read_tgcn_csv(speeds, adjacency, start="2012-03-01")


def test_non_numeric_cell_is_located(tmp_path: Path) -> None:
    speeds, adjacency = write_pair(tmp_path)
    lines = speeds.read_text().splitlines()
    lines[3] = "61,abc,61,61"
    speeds.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"speed.csv: line 4, column 767541 holds 'abc'"):
        read_tgcn_csv(speeds, adjacency, start="2012-03-01")


def test_non_numeric_adjacency_cell(tmp_path: Path) -> None:
    speeds, adjacency = write_pair(tmp_path)
    adjacency.write_text(adjacency.read_text().replace("0.25", "x", 1))
    with pytest.raises(DataError, match=r"adj.csv: line 2, column 3 holds 'x'"):
        read_tgcn_csv(speeds, adjacency, start="2012-03-01")


def test_negative_weight(tmp_path: Path) -> None:
    speeds, adjacency = write_pair(tmp_path)
    adjacency.write_text(adjacency.read_text().replace("0.25", "-0.25", 1))
    with pytest.raises(DataError, match=r"adj.csv: weight at line 2, column 3 is .*negative"):
        read_tgcn_csv(speeds, adjacency, start="2012-03-01")


def test_missing_header_row(tmp_path: Path) -> None:
    speeds, adjacency = write_pair(tmp_path)
    speeds.write_text("\n".join(speeds.read_text().splitlines()[1:]) + "\n")
    with pytest.raises(DataError, match=r"speed.csv: the first row holds numbers .* add a header"):
        read_tgcn_csv(speeds, adjacency, start="2012-03-01")


def test_ragged_row(tmp_path: Path) -> None:
    speeds, adjacency = write_pair(tmp_path)
    speeds.write_text(speeds.read_text() + "1,2,3,4,5\n")
    with pytest.raises(DataError, match=r"speed.csv: T-GCN CSV is not valid CSV"):
        read_tgcn_csv(speeds, adjacency, start="2012-03-01")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"start": "yesterday-ish"}, r"start 'yesterday-ish' is not a date"),
        ({"start": "2012-03-11 02:30", "timezone": "America/Los_Angeles"}, r"does not exist"),
        ({"start": "2012-03-01", "timezone": "Mars/Olympus"}, r"timezone 'Mars/Olympus'"),
        ({"start": "2012-03-01", "frequency": "often"}, r"frequency 'often'"),
    ],
)
def test_bad_time_options(pair: tuple[Path, Path], options: dict[str, str], message: str) -> None:
    with pytest.raises(DataError, match=message):
        read_tgcn_csv(*pair, **options)
