import h3
import numpy as np
import pandas as pd
import pytest

from urbanflow.cli import main
from urbanflow.data.catalog import load_dataset
from urbanflow.data.trips import EndpointCounts, TripColumns, parse_bbox, trips_to_flows
from urbanflow.errors import ConfigError, DataError

STOPS = (
    "stop_id,latitude,longitude,name\nA,48.85,2.35,Alpha\nB,48.86,2.35,Beta\nC,48.85,2.37,Gamma\n"
)

# Eight trips on Monday 13 May 2024, naive times local in Paris (UTC+2). The stops are
# 1.1 km (A-B) and 1.5 km (A-C) apart, so each point below is next to one stop.
TRIPS = """start_time,start_lat,start_lon,end_time,end_lat,end_lon
2024-05-13 08:01,48.8501,2.3501,2024-05-13 08:20,48.8601,2.3499
2024-05-13 08:14,48.8499,2.3500,2024-05-13 08:31,48.8500,2.3701
2024-05-13 08:15,48.8600,2.3502,2024-05-13 08:29,48.8501,2.3500
2024-05-13 08:59,48.8500,2.3699,2024-05-13 09:10,48.8600,2.3500
2024-05-13 08:05,48.9000,2.4000,2024-05-13 08:30,48.8500,2.3500
2024-05-13 08:40,,,2024-05-13 08:50,48.8600,2.3500
2024-05-13 08:20,48.8500,2.3500,,,
2024-05-13T06:50:00Z,48.8600,2.3500,2024-05-13T07:05:00Z,48.8500,2.3500
"""
# by hand: trip -> origin (departure step) / destination (arrival step)
# 1 A 08:00 / B 08:15     2 A 08:00 / C 08:30     3 B 08:15 / A 08:15
# 4 C 08:45 / B 09:00     5 no stop within 500 m / A 08:30
# 6 no start coordinates / B 08:45               7 A 08:15 / no end
# 8 06:50Z = 08:50 local: B 08:45 / 07:05Z = 09:05: A 09:00
DEPARTURES = {"08:00": [2, 0, 0], "08:15": [1, 1, 0], "08:30": [0, 0, 0], "08:45": [0, 1, 1]}
ARRIVALS = {"08:15": [1, 1, 0], "08:30": [1, 0, 1], "08:45": [0, 1, 0], "09:00": [1, 1, 0]}
OD = [("A", "B", 8, 1), ("A", "C", 8, 1), ("B", "A", 8, 2), ("C", "B", 8, 1)]


@pytest.fixture
def city(tmp_path):
    (tmp_path / "stops.csv").write_text(STOPS)
    (tmp_path / "trips.csv").write_text(TRIPS)
    return tmp_path


def by_step(folder, timezone="Europe/Paris"):
    frame = pd.read_parquet(folder / "readings.parquet")
    frame["step"] = frame["timestamp"].dt.tz_convert(timezone).dt.strftime("%H:%M")
    table = frame.pivot(index="step", columns="sensor_id", values="value")
    return {step: row.tolist() for step, row in table.iterrows()}


def convert(city, **options):
    options.setdefault("timezone", "Europe/Paris")
    return trips_to_flows(
        city / "trips.csv", f"stops:{city / 'stops.csv'}", "15min", city / "out", **options
    )


def test_hand_made_trips_give_exact_counts_arrivals_and_od(city):
    summary = convert(city)
    assert summary.records == 8 and summary.zones == 3 and summary.files == 1
    assert summary.departures == EndpointCounts(counted=6, missing=1, outside_bbox=0, no_zone=1)
    assert summary.arrivals == EndpointCounts(counted=7, missing=1, outside_bbox=0, no_zone=0)
    assert summary.od_trips == 5 and summary.steps == {"departures": 4, "arrivals": 4}
    out = city / "out"
    assert by_step(out / "departures") == DEPARTURES
    assert by_step(out / "arrivals") == ARRIVALS
    od = pd.read_parquet(out / "od.parquet")
    assert list(od.columns) == ["origin_zone", "destination_zone", "hour_of_week", "trips"]
    assert list(od.itertuples(index=False, name=None)) == OD
    for quantity in ("departures", "arrivals"):
        dataset = load_dataset(out / quantity)
        assert dataset.sensors.ids == ("A", "B", "C")
        assert dataset.sensors.names == ("Alpha", "Beta", "Gamma")
        assert dataset.kind == "count" and dataset.metadata.quantity == quantity
        assert dataset.metadata.unit == "trips" and dataset.metadata.frequency == "15min"
        assert str(dataset.timestamps.tz) == "Europe/Paris"
        assert "trips.csv" in dataset.metadata.source
        assert dataset.graph.num_edges == 6  # three stops, each linked to the two others
    dataset = load_dataset(out / "departures")
    assert dataset.timestamps[0] == pd.Timestamp("2024-05-13 08:00", tz="Europe/Paris")
    assert dataset.readings[:, :, 0].sum() == 6
    edges = pd.read_csv(out / "departures" / "edges.csv")
    assert edges.loc[(edges.source == "A") & (edges.target == "B"), "distance_m"].item() == (
        pytest.approx(1112.0, abs=1)
    )


def test_small_batches_give_the_same_counts(city):
    convert(city, batch_rows=3)
    assert by_step(city / "out" / "departures") == DEPARTURES
    assert by_step(city / "out" / "arrivals") == ARRIVALS


def test_bbox_exclusions_are_counted(city):
    # the box leaves out stop C's points (longitude 2.37) and trip 5's start (48.90, 2.40)
    summary = convert(city, bbox=parse_bbox("48.84,2.34,48.87,2.36"))
    assert summary.departures == EndpointCounts(counted=5, missing=1, outside_bbox=2, no_zone=0)
    assert summary.arrivals == EndpointCounts(counted=6, missing=1, outside_bbox=1, no_zone=0)
    assert summary.zones == 2 and summary.od_trips == 3
    assert by_step(city / "out" / "departures") == {
        "08:00": [2, 0],
        "08:15": [1, 1],
        "08:30": [0, 0],
        "08:45": [0, 1],
    }


def test_local_flooring_and_time_zones_from_parquet(tmp_path):
    # Kolkata is UTC+5:30: hourly steps start at xx:30 UTC, not on the UTC hour.
    utc = pd.to_datetime(["2024-01-01 03:45", "2024-01-01 04:10", "2024-01-01 05:40"], utc=True)
    frame = pd.DataFrame({"t": utc, "y": [28.61, 28.61, 28.61], "x": [77.21] * 3})
    frame.to_parquet(tmp_path / "aware.parquet")
    columns = TripColumns(start_time="t", start_lat="y", start_lon="x")
    summary = trips_to_flows(
        tmp_path / "aware.parquet",
        "h3:7",
        "1h",
        tmp_path / "a",
        timezone="Asia/Kolkata",
        columns=columns,
    )
    assert summary.arrivals is None and summary.od_trips is None
    assert not (tmp_path / "a" / "arrivals").exists()
    readings = pd.read_parquet(tmp_path / "a" / "departures" / "readings.parquet")
    assert list(readings["timestamp"]) == list(
        pd.to_datetime(["2024-01-01 03:30", "2024-01-01 04:30", "2024-01-01 05:30"], utc=True)
    )  # 09:15 and 09:40 local -> 09:00 (03:30Z); 11:10 local -> 11:00 (05:30Z)
    assert readings["value"].tolist() == [2, 0, 1]
    # naive Parquet timestamps are local in --timezone
    frame["t"] = utc.tz_convert("Asia/Kolkata").tz_localize(None)
    frame.to_parquet(tmp_path / "naive.parquet")
    trips_to_flows(
        tmp_path / "naive.parquet",
        "h3:7",
        "1h",
        tmp_path / "n",
        timezone="Asia/Kolkata",
        columns=columns,
    )
    again = pd.read_parquet(tmp_path / "n" / "departures" / "readings.parquet")
    assert again.equals(readings)


def test_hour_of_week_is_local(tmp_path):
    # Sunday 23:30 UTC is Monday 00:30 in Paris (winter, UTC+1): hour of week 0;
    # naive Sunday 23:30 is local: hour 167
    (tmp_path / "t.csv").write_text(
        "start_time,start_lat,start_lon,end_lat,end_lon\n"
        "2024-01-07T23:30:00Z,48.85,2.35,48.85,2.35\n"
        "2024-01-07 23:30,48.85,2.35,48.85,2.35\n"
    )
    trips_to_flows(tmp_path / "t.csv", "h3:8", "15min", tmp_path / "o", timezone="Europe/Paris")
    od = pd.read_parquet(tmp_path / "o" / "od.parquet")
    assert od["hour_of_week"].tolist() == [0, 167] and od["trips"].tolist() == [1, 1]


def test_h3_zones_edges_and_reader(tmp_path):
    centre = h3.latlng_to_cell(48.8566, 2.3522, 9)
    neighbour = sorted(h3.grid_ring(centre, 1))[0]
    far = h3.latlng_to_cell(48.90, 2.45, 9)
    rows = []
    for i, cell in enumerate([centre, centre, neighbour, far]):
        lat, lon = h3.cell_to_latlng(cell)
        rows.append((f"2024-05-13 08:{i * 10:02d}", lat, lon))
    pd.DataFrame(rows, columns=["start_time", "start_lat", "start_lon"]).to_parquet(
        tmp_path / "taps.parquet"
    )
    summary = trips_to_flows(tmp_path / "taps.parquet", "h3:9", "10min", tmp_path / "o")
    assert summary.zones == 3 and summary.steps == {"departures": 4}
    edges = pd.read_csv(tmp_path / "o" / "departures" / "edges.csv")
    assert set(zip(edges.source, edges.target, strict=True)) == {
        (centre, neighbour),
        (neighbour, centre),
    }
    dataset = load_dataset(tmp_path / "o" / "departures")
    assert dataset.readings.shape == (4, 3, 1)
    assert dataset.graph.num_edges == 2  # the kernel keeps the neighbour edges
    column = dataset.sensors.ids.index(centre)
    assert dataset.readings[:, column, 0].tolist() == [1, 1, 0, 0]


def test_grid_zones_from_a_glob(tmp_path):
    (tmp_path / "a.csv").write_text(
        "start_time,start_lat,start_lon\n2024-05-13 08:00,48.8045,2.305\n"
    )
    (tmp_path / "b.csv").write_text(
        "start_lat,start_lon,start_time\n48.8150,2.3200,2024-05-13 08:20\n"
        "48.95,2.35,2024-05-13 08:20\n"
    )
    summary = trips_to_flows(
        str(tmp_path / "*.csv"),
        "grid:1000",
        "15min",
        tmp_path / "o",
        bbox=(48.80, 2.30, 48.90, 2.40),
    )
    assert summary.files == 2 and summary.departures.outside_bbox == 1
    sensors = pd.read_csv(tmp_path / "o" / "departures" / "sensors.csv")
    assert sensors["sensor_id"].tolist() == ["g0_0", "g1_1"]
    assert by_step(tmp_path / "o" / "departures", "UTC") == {"08:00": [1, 0], "08:15": [0, 1]}


def write(tmp_path, text, name="trips.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


HEADER = "start_time,start_lat,start_lon\n"


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (
            "2024-05-13 08:00,48.85,2.35\n2024-05-13 08:00,48.85,2.35\nabc,48.85,2.35\n",
            "trips.csv: start_time 'abc' on line 4 cannot be parsed; write ISO 8601",
        ),
        (
            "2024-05-13 08:00,48.85,2.35\n2024-05-13 08:00,-118.25,2.35\n",
            "trips.csv: start_lat '-118.25' on line 3 is outside -90..90 (latitude and "
            "longitude swapped?); fix the value",
        ),
        (
            "2024-05-13 08:00,48.85,east\n",
            "trips.csv: start_lon 'east' on line 2 is not a number; write decimal degrees",
        ),
        ("", "trips.csv: empty (no trip records)"),
    ],
)
def test_malformed_records_name_the_line(tmp_path, body, says):
    path = write(tmp_path, HEADER + body)
    with pytest.raises(DataError) as error:
        trips_to_flows(path, "h3:8", "15min", tmp_path / "o")
    assert str(error.value).startswith(says) and "\n" not in str(error.value)
    assert not (tmp_path / "o").exists()


def test_malformed_parquet_row_and_missing_columns(tmp_path):
    frame = pd.DataFrame(
        {
            "start_time": ["2024-05-13 08:00", "13/05/2024 8h"],
            "lat": [48.85, 48.85],
            "lon": [2.3, 2.3],
        }
    )
    frame.to_parquet(tmp_path / "t.parquet")
    with pytest.raises(
        DataError,
        match="no column 'start_lat' for the start lat "
        r"\(columns there: start_time, lat, lon\); name it with --start-lat-column",
    ):
        trips_to_flows(tmp_path / "t.parquet", "h3:8", "15min", tmp_path / "o")
    columns = TripColumns(start_lat="lat", start_lon="lon")
    with pytest.raises(DataError, match=r"t\.parquet: start_time '13/05/2024 8h' on row 2 cannot"):
        trips_to_flows(tmp_path / "t.parquet", "h3:8", "15min", tmp_path / "o", columns=columns)
    frame["end_lat"] = 1.0
    frame.to_parquet(tmp_path / "t.parquet")
    with pytest.raises(DataError, match="has 'end_lat' but no 'end_lon' column"):
        trips_to_flows(tmp_path / "t.parquet", "h3:8", "15min", tmp_path / "o", columns=columns)


def test_bad_options_and_paths(city, tmp_path):
    trips = city / "trips.csv"
    with pytest.raises(DataError, match=r"nowhere\.csv: trip records file not found"):
        trips_to_flows(tmp_path / "nowhere.csv", "h3:8", "15min", tmp_path / "o")
    (tmp_path / "zero.csv").write_text("")
    with pytest.raises(DataError, match=r"zero\.csv: empty \(0 bytes\)"):
        trips_to_flows(tmp_path / "zero.csv", "h3:8", "15min", tmp_path / "o")
    with pytest.raises(DataError, match="no file matches"):
        trips_to_flows(str(tmp_path / "none" / "*.parquet"), "h3:8", "15min", tmp_path / "o")
    for spec in ("h3:20", "grid:-5", "foo:1"):
        with pytest.raises(ConfigError, match=f"zones '{spec}'"):
            trips_to_flows(trips, spec, "15min", tmp_path / "o")
    with pytest.raises(DataError, match="frequency '5 minutes' is not understood"):
        trips_to_flows(trips, "h3:8", "5 minutes", tmp_path / "o")
    with pytest.raises(DataError, match="timezone 'PST' is not known"):
        trips_to_flows(trips, "h3:8", "15min", tmp_path / "o", timezone="PST")
    with pytest.raises(ConfigError, match="bbox 'x' is not four numbers"):
        parse_bbox("x")
    with pytest.raises(ConfigError, match="needs -90 ≤ south < north ≤ 90"):
        parse_bbox("48.9,2.3,48.8,2.4")
    with pytest.raises(DataError, match=r"no record falls in a zone .* 7 outside the bbox"):
        trips_to_flows(trips, "h3:8", "15min", tmp_path / "o", bbox=(10, 10, 11, 11))


def test_output_folder_needs_force(city):
    (city / "out").mkdir()
    (city / "out" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"exists and is not empty; .* add --force"):
        convert(city)
    convert(city, force=True)
    convert(city, force=True)  # again: replaces its own folders
    assert (city / "out" / "keep.txt").read_text() == "mine"
    assert by_step(city / "out" / "departures") == DEPARTURES


def test_cli_from_trips(city, capsys):
    args = [
        "datasets",
        "from-trips",
        str(city / "trips.csv"),
        "--zones",
        f"stops:{city / 'stops.csv'}",
        "--out",
        str(city / "out"),
        "--timezone",
        "Europe/Paris",
        "--bbox",
        "48.84,2.34,48.87,2.36",
    ]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out = capsys.readouterr().out
    assert exit_info.value.code in (0, None)
    assert "Read 8 records" in out and "2 zones" in out and "departures" in out
    assert "Origin-destination pairs: 3 trips" in out
    with pytest.raises(SystemExit) as exit_info:
        main(args)  # the folder is not empty now
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "exists and is not empty" in err and len(err.strip().splitlines()) == 1
    assert np.isfinite(load_dataset(city / "out" / "arrivals").readings).all()


def test_grid_without_bbox_starts_at_the_data_south_west(tmp_path):
    path = write(
        tmp_path,
        HEADER + "2024-05-13 08:00,48.85,2.35\n2024-05-13 08:00,48.86,2.37\n",
    )
    trips_to_flows(path, "grid:500", "15min", tmp_path / "o")
    sensors = pd.read_csv(tmp_path / "o" / "departures" / "sensors.csv")
    # 0.01° north = 1112 m (row 2); 0.02° east = 1463 m at 48.855° (column 2)
    assert sensors["sensor_id"].tolist() == ["g0_0", "g2_2"]
