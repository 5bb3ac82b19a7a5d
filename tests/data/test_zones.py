import h3
import numpy as np
import pytest

from urbanflow.data.zones import (
    GridZoning,
    ZoneSpec,
    make_zoning,
    parse_zone_spec,
    read_stops,
)
from urbanflow.errors import ConfigError, DataError
from urbanflow.graph.builders import haversine_m


def test_zone_specs_parse():
    assert parse_zone_spec("h3:8") == ZoneSpec("h3", resolution=8)
    assert parse_zone_spec(" H3:0 ") == ZoneSpec("h3", resolution=0)
    assert parse_zone_spec("grid:250.5") == ZoneSpec("grid", cell_m=250.5)
    assert parse_zone_spec("stops:a/b.csv").stops.name == "b.csv"
    assert str(parse_zone_spec("h3:15")) == "h3:15"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("h3:20", "H3 resolution must be a whole number from 0 to 15"),
        ("h3:x", "H3 resolution"),
        ("grid:-5", "grid cell side must be a number of metres"),
        ("grid:abc", "grid cell side"),
        ("foo:1", "is not understood; write h3:RES"),
        ("h3", "is not understood"),
        ("stops:", "is not understood"),
    ],
)
def test_bad_zone_specs_are_one_line_config_errors(text, says):
    with pytest.raises(ConfigError, match=says) as error:
        parse_zone_spec(text)
    assert "\n" not in str(error.value)


def test_h3_assign_describe_and_neighbour_edges():
    zoning = make_zoning(parse_zone_spec("h3:9"))
    centre = h3.latlng_to_cell(48.8566, 2.3522, 9)
    neighbour = sorted(h3.grid_ring(centre, 1))[0]
    far = h3.latlng_to_cell(48.90, 2.45, 9)
    points = [h3.cell_to_latlng(c) for c in (centre, neighbour, far, centre)]
    lat = np.array([p[0] for p in points] + [np.nan])
    lon = np.array([p[1] for p in points] + [2.0])
    codes = zoning.assign(lat, lon)
    assert codes[-1] == -1  # a missing coordinate has no zone
    assert [h3.int_to_str(int(c)) for c in codes[:4]] == [centre, neighbour, far, centre]
    table = zoning.describe(codes[:4])
    assert set(table.ids) == {centre, neighbour, far} and len(table) == 3
    assert list(table.codes) == sorted(table.codes)
    i = table.ids.index(centre)
    assert (table.latitude[i], table.longitude[i]) == pytest.approx(h3.cell_to_latlng(centre))
    edges = zoning.edges(table)
    pairs = {
        (table.ids[s], table.ids[t]) for s, t in zip(edges.sources, edges.targets, strict=True)
    }
    assert pairs == {(centre, neighbour), (neighbour, centre)}  # the far cell is alone
    expected = haversine_m(*h3.cell_to_latlng(centre), *h3.cell_to_latlng(neighbour))
    assert edges.distance_m == pytest.approx([expected, expected])


def test_grid_cells_by_hand():
    # cells of 1000 m from the south-west corner (48.80, 2.30); one degree of latitude is
    # 111 195 m, one of longitude 111 195 m × cos(48.85°) = 73 180 m at the box's centre.
    zoning = make_zoning(parse_zone_spec("grid:1000"), origin=(48.80, 2.30, 48.90, 2.40))
    assert isinstance(zoning, GridZoning)
    lat = np.array([48.8045, 48.8150, 48.8045, 48.8150])  # 500 m, 1668 m north
    lon = np.array([2.3050, 2.3050, 2.3200, 2.3200])  # 366 m, 1464 m east
    table = zoning.describe(zoning.assign(lat, lon))
    assert table.ids == ("g0_0", "g0_1", "g1_0", "g1_1")
    lat_step = 1000 / 111_194.93
    assert table.latitude[0] == pytest.approx(48.80 + lat_step / 2)
    assert table.latitude[2] == pytest.approx(48.80 + 1.5 * lat_step)
    edges = zoning.edges(table)
    assert len(edges.sources) == 12  # every one of the 4 cells linked to the 3 others
    assert sorted(np.round(edges.distance_m, -1))[:4] == [1000.0] * 4


def test_stops_nearest_within_the_maximum_distance(tmp_path):
    stops = tmp_path / "stops.csv"
    stops.write_text("stop_id,stop_lat,stop_lon,stop_name\nA,48.85,2.35,Alpha\nB,48.86,2.35,\n")
    zoning = make_zoning(parse_zone_spec(f"stops:{stops}"), max_stop_distance_m=300)
    # 0.002° of latitude ≈ 222 m (within), 0.004° ≈ 445 m (too far)
    codes = zoning.assign(np.array([48.852, 48.858, 48.854, np.nan]), np.array([2.35] * 4))
    assert codes.tolist() == [0, 1, -1, -1]
    table = zoning.describe(codes[codes >= 0])
    assert table.ids == ("A", "B") and table.names == ("Alpha", "B")
    assert len(zoning.edges(table).sources) == 2


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("id,latitude,longitude\nA,1,2\n", "missing column(s) stop_id (columns there: id,"),
        ("stop_id,latitude,longitude\nA,91,2\n", "latitude '91' of stop 'A' (line 2) is missing"),
        ("stop_id,latitude,longitude\nA,1,2\nA,1,3\n", "stop id 'A' appears twice (line 3)"),
        (
            "stop_id,latitude,longitude\nA,x,2\n",
            "latitude 'x' of stop 'A' (line 2) is not a number",
        ),
        ("stop_id,latitude,longitude\n", "empty"),
    ],
)
def test_bad_stops_files(tmp_path, text, says):
    path = tmp_path / "stops.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=says.replace("(", r"\(").replace(")", r"\)")):
        read_stops(path)


def test_missing_stops_file_and_bad_distance(tmp_path):
    with pytest.raises(DataError, match="stops file not found"):
        make_zoning(parse_zone_spec(f"stops:{tmp_path / 'none.csv'}"))
    with pytest.raises(ConfigError, match="max stop distance"):
        make_zoning(parse_zone_spec(f"stops:{tmp_path / 'none.csv'}"), max_stop_distance_m=0)
