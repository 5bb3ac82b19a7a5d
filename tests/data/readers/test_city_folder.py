"""The city folder: formats, time grid and zones, missing values, errors, graphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from urbanflow.data.catalog import embedded_folder
from urbanflow.data.readers.city_folder import read_city_folder
from urbanflow.errors import DataError
from urbanflow.graph.builders import haversine_m

REPO = Path(__file__).parents[3]
EXAMPLE = REPO / "docs" / "examples" / "my-city"
LA = 'timezone = "America/Los_Angeles"\n'


def expected_wide() -> np.ndarray:
    """``[6 3]`` readings of the ``wide`` fixture."""
    values = 10.0 * np.arange(6)[:, None] + np.arange(3)[None, :]
    values[2, 1] = np.nan
    return values


def values_of(folder: Path) -> np.ndarray:
    return read_city_folder(folder).readings[..., 0]


# --- formats ------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["long", "wide"])
@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_long_and_wide_csv_and_parquet_give_the_same_readings(
    city, wide, long_from, layout, suffix
):
    frame = long_from(wide) if layout == "long" else wide
    dataset = read_city_folder(city(frame, readings_name=f"readings.{suffix}"))
    assert dataset.readings.shape == (6, 3, 1)
    assert dataset.readings.dtype == np.float32
    np.testing.assert_array_equal(dataset.readings[..., 0], expected_wide())
    assert dataset.sensors.ids == ("a", "b", "c")
    assert dataset.timestamps[0] == pd.Timestamp("2024-01-01 00:00", tz="UTC")
    assert dataset.metadata.frequency == "5min"
    assert dataset.metadata.name == "my-city"


def test_parquet_with_native_datetimes(city, wide):
    naive = wide.assign(timestamp=pd.to_datetime(wide["timestamp"]))
    np.testing.assert_array_equal(
        values_of(city(naive, readings_name="readings.parquet")), expected_wide()
    )
    aware = wide.assign(timestamp=pd.to_datetime(wide["timestamp"]).dt.tz_localize("Europe/Paris"))
    dataset = read_city_folder(city(aware, readings_name="readings.parquet"))
    assert dataset.timestamps[0] == pd.Timestamp("2023-12-31 23:00", tz="UTC")


def test_parquet_is_preferred_to_csv(city, wide):
    folder = city(wide, readings_name="readings.parquet")
    (folder / "readings.csv").write_text("not,read\n")
    np.testing.assert_array_equal(values_of(folder), expected_wide())


def test_unsorted_rows_are_sorted(city, wide, long_from):
    shuffled = long_from(wide).sample(frac=1.0, random_state=3)
    assert not shuffled["timestamp"].is_monotonic_increasing
    np.testing.assert_array_equal(values_of(city(shuffled)), expected_wide())
    backwards = wide.iloc[::-1]
    dataset = read_city_folder(city(backwards))
    np.testing.assert_array_equal(dataset.readings[..., 0], expected_wide())
    assert dataset.timestamps.is_monotonic_increasing


def test_name_column_is_optional(city, wide):
    named = read_city_folder(city(wide))
    assert named.sensors.names == ("Main St", "Second St", "Hill St")
    plain = "sensor_id,latitude,longitude\na,34.05,-118.25\nb,34.06,-118.25\nc,34.05,-118.24\n"
    dataset = read_city_folder(city(wide, sensors=plain))
    assert dataset.sensors.names is None
    np.testing.assert_allclose(dataset.sensors.latitude, [34.05, 34.06, 34.05])


def test_sensors_without_readings_are_all_missing(city, wide):
    dataset = read_city_folder(city(wide.drop(columns="c")))
    assert dataset.readings.shape == (6, 3, 1)
    assert np.isnan(dataset.readings[:, 2, 0]).all()


# --- missing values -----------------------------------------------------------------------


def test_time_gaps_become_nan(city, rows):
    text = rows(
        "timestamp,a,b",
        [
            "2024-01-01 00:00,1,2",
            "2024-01-01 00:05,3,4",
            "2024-01-01 00:20,5,6",
            "2024-01-01 00:25,7,8",
            "2024-01-01 00:30,9,10",
        ],
    )
    dataset = read_city_folder(city(text))
    assert dataset.num_steps == 7
    assert dataset.metadata.frequency == "5min"
    assert np.isnan(dataset.readings[2:4, :2, 0]).all()
    np.testing.assert_array_equal(dataset.readings[[0, 1, 4, 5, 6], 0, 0], [1, 3, 5, 7, 9])
    assert (np.diff(dataset.timestamps.asi8) == pd.Timedelta("5min").value).all()


def test_empty_null_and_nan_cells_are_missing(city, rows):
    text = rows(
        "timestamp,a,b,c",
        ["2024-01-01 00:00,1,,null", "2024-01-01 00:05,NaN,2,3", "2024-01-01 00:10, ,4,NULL"],
    )
    values = values_of(city(text))
    assert np.isnan(values[[0, 0, 1, 2, 2], [1, 2, 0, 0, 2]]).all()
    np.testing.assert_array_equal(values[[0, 1, 1, 2], [0, 1, 2, 1]], [1, 2, 3, 4])


def test_empty_value_in_long_rows_is_missing(city, rows):
    text = rows(
        "timestamp,sensor_id,value",
        ["2024-01-01 00:00,a,1", "2024-01-01 00:05,a,", "2024-01-01 00:10,a,null"],
    )
    values = values_of(city(text))
    assert values[0, 0] == 1
    assert np.isnan(values[1:, 0]).all()


@pytest.mark.parametrize("null_value", ["-1", "0", "-999.5"])
def test_null_value_becomes_nan(city, rows, null_value):
    text = rows(
        "timestamp,a,b",
        [f"2024-01-01 00:00,{null_value},7", f"2024-01-01 00:05,5,{null_value}"],
    )
    dataset = read_city_folder(city(text, toml=f"null_value = {null_value}\n"))
    values = dataset.readings[..., 0]
    assert np.isnan(values[0, 0]) and np.isnan(values[1, 1])
    np.testing.assert_array_equal(values[[0, 1], [1, 0]], [7, 5])
    assert dataset.metadata.null_value == float(null_value)


def test_without_null_value_zero_is_a_reading(city, rows):
    text = rows("timestamp,a", ["2024-01-01 00:00,0", "2024-01-01 00:05,-1"])
    np.testing.assert_array_equal(values_of(city(text))[:, 0], [0, -1])


# --- frequency ----------------------------------------------------------------------------

TEN_MINUTES_THEN_FIVE = [
    "2024-01-01 00:00,1",
    "2024-01-01 00:10,2",
    "2024-01-01 00:20,3",
    "2024-01-01 00:30,4",
    "2024-01-01 00:35,5",
]


@pytest.mark.parametrize("frequency", ["5min", "PT5M", "pt5m", "300s"])
def test_frequency_given(city, rows, frequency):
    text = rows("timestamp,a", TEN_MINUTES_THEN_FIVE)
    dataset = read_city_folder(city(text, toml=f'frequency = "{frequency}"\n'))
    assert dataset.metadata.frequency == "5min"
    assert dataset.num_steps == 8
    np.testing.assert_array_equal(dataset.readings[::2, 0, 0], [1, 2, 3, 4])
    assert np.isnan(dataset.readings[[1, 3, 5], 0, 0]).all()
    assert dataset.readings[7, 0, 0] == 5


def test_frequency_inferred_as_the_most_common_gap(city, rows):
    text = rows(
        "timestamp,a",
        [
            "2024-01-01 00:00,1",
            "2024-01-01 00:15,2",
            *[
                f"2024-01-01 {hour:02d}:{minute:02d},3"
                for hour in (1, 2)
                for minute in (0, 15, 30, 45)
            ],
        ],
    )
    dataset = read_city_folder(city(text))
    assert dataset.metadata.frequency == "15min"
    assert dataset.num_steps == 12
    assert np.isnan(dataset.readings[2:4, 0, 0]).all()


def test_frequency_in_hours(city, rows):
    text = rows("timestamp,a", ["2024-01-01 00:00,1", "2024-01-01 01:00,2", "2024-01-01 03:00,3"])
    dataset = read_city_folder(city(text))
    assert dataset.metadata.frequency == "1h"
    assert dataset.num_steps == 4
    assert dataset.step == pd.Timedelta("1h")


def test_one_timestamp_needs_a_frequency(city, rows):
    text = rows("timestamp,a,b", ["2024-01-01 00:00,1,2"])
    with pytest.raises(DataError, match=r"^readings\.csv: only one distinct timestamp"):
        read_city_folder(city(text))
    dataset = read_city_folder(city(text, toml='frequency = "1h"\n'))
    assert dataset.readings.shape == (1, 3, 1)


# --- timestamps and time zones ------------------------------------------------------------


def test_offsets_are_used_as_given(city, rows):
    text = rows(
        "timestamp,a",
        [
            "2024-01-01T01:00:00+01:00,1",
            "2024-01-01T00:05:00Z,2",
            "2024-01-01T02:10:00+02:00,3",
            "2023-12-31T19:15:00-05:00,4",
        ],
    )
    dataset = read_city_folder(city(text, toml='timezone = "Europe/Paris"\n'))
    expected = pd.date_range("2024-01-01 00:00", periods=4, freq="5min", tz="UTC")
    assert (dataset.timestamps == expected).all()
    assert str(dataset.timestamps.tz) == "Europe/Paris"
    np.testing.assert_array_equal(dataset.readings[:, 0, 0], [1, 2, 3, 4])


def test_offsets_across_the_autumn_change(city, rows):
    text = rows(
        "timestamp,a",
        [
            "2024-11-03T01:30:00-07:00,1",
            "2024-11-03T01:45:00-07:00,2",
            "2024-11-03T01:00:00-08:00,3",
            "2024-11-03T01:15:00-08:00,4",
        ],
    )
    dataset = read_city_folder(city(text, toml=LA))
    assert dataset.num_steps == 4
    assert dataset.timestamps[2] == pd.Timestamp("2024-11-03 09:00", tz="UTC")
    np.testing.assert_array_equal(dataset.readings[:, 0, 0], [1, 2, 3, 4])


def test_naive_timestamps_are_local_in_the_timezone(city, wide):
    dataset = read_city_folder(city(wide, toml=LA))
    assert dataset.timestamps[0] == pd.Timestamp("2024-01-01 08:00", tz="UTC")
    assert str(dataset.timestamps.tz) == "America/Los_Angeles"
    assert dataset.metadata.timezone == "America/Los_Angeles"


def local_day(start: str, end: str) -> pd.DatetimeIndex:
    """Every 15 minutes of Los Angeles time in ``[start, end)``, as aware times."""
    return pd.date_range(start, end, freq="15min", tz="America/Los_Angeles", inclusive="left")


@pytest.mark.parametrize("layout", ["wide", "long by time", "long by sensor"])
def test_naive_times_across_the_autumn_change(city, layout):
    times = local_day("2024-11-03 00:00", "2024-11-03 03:00")
    assert len(times) == 16  # 3 hours of wall clock, 01:xx twice
    naive = times.tz_localize(None).strftime("%Y-%m-%d %H:%M")
    assert naive.duplicated().sum() == 4
    wide = pd.DataFrame({"timestamp": naive, "a": np.arange(16.0), "b": 100 + np.arange(16.0)})
    if layout == "wide":
        frame = wide
    else:
        frame = wide.melt(id_vars="timestamp", var_name="sensor_id", value_name="value")
        if layout == "long by time":  # a stable sort keeps each sensor's two 01:xx in order
            frame = frame.iloc[np.argsort(np.tile(np.arange(16), 2), kind="stable")]
    dataset = read_city_folder(city(frame, toml=LA))
    assert dataset.num_steps == 16
    assert (dataset.timestamps == times).all()
    assert not np.isnan(dataset.readings[:, :2]).any()
    np.testing.assert_array_equal(dataset.readings[:, 0, 0], np.arange(16))
    np.testing.assert_array_equal(dataset.readings[:, 1, 0], 100 + np.arange(16))


def test_naive_times_across_the_spring_change_leave_no_gap(city):
    times = local_day("2024-03-10 00:00", "2024-03-10 04:00")
    assert len(times) == 12  # 02:xx does not exist
    naive = times.tz_localize(None).strftime("%Y-%m-%d %H:%M")
    frame = pd.DataFrame({"timestamp": naive, "a": np.arange(12.0)})
    dataset = read_city_folder(city(frame, toml=LA))
    assert dataset.num_steps == 12
    assert (dataset.timestamps == times).all()
    assert not np.isnan(dataset.readings[:, 0, 0]).any()
    assert dataset.metadata.frequency == "15min"


def test_a_time_that_does_not_exist_in_the_zone(city, rows):
    text = rows(
        "timestamp,a",
        ["2024-03-10 01:30,1", "2024-03-10 01:45,2", "2024-03-10 02:30,3", "2024-03-10 03:00,4"],
    )
    with pytest.raises(
        DataError,
        match=r"^readings\.csv: timestamp '2024-03-10 02:30' \(line 4\) does not exist in "
        r"America/Los_Angeles",
    ):
        read_city_folder(city(text, toml=LA))


def test_a_byte_order_mark_is_ignored(city, wide):
    folder = city(b"\xef\xbb\xbf" + wide.to_csv(index=False).encode())
    np.testing.assert_array_equal(values_of(folder), expected_wide())


# --- errors -------------------------------------------------------------------------------


def test_duplicate_sensor_and_timestamp(city, rows):
    text = rows(
        "timestamp,sensor_id,value",
        [
            "2024-01-01 00:00,a,1",
            "2024-01-01 00:05,a,2",
            "2024-01-01 00:00,b,3",
            "2024-01-01 00:05,a,4",
        ],
    )
    with pytest.raises(
        DataError,
        match=r"^readings\.csv: sensor 'a' has two readings at '2024-01-01 00:05' "
        r"\(2024-01-01 00:05 UTC, line 5\)",
    ):
        read_city_folder(city(text))


def test_duplicate_outside_the_autumn_hour_is_an_error(city, rows):
    text = rows("timestamp,a", ["2024-11-03 05:00,1", "2024-11-03 05:15,2", "2024-11-03 05:15,3"])
    with pytest.raises(DataError, match=r"sensor 'a' has two readings .*line 4"):
        read_city_folder(city(text, toml=LA))


def test_readings_for_unknown_sensors_list_at_most_five(city, rows):
    unknown = [f"x{i}" for i in range(7)]
    text = rows(
        "timestamp,sensor_id,value",
        [f"2024-01-01 00:0{t},{s},1" for t in (0, 5) for s in ["a", *unknown]],
    )
    with pytest.raises(DataError) as caught:
        read_city_folder(city(text))
    message = str(caught.value)
    assert message.startswith("readings.csv: readings for 7 sensor(s) missing from sensors.csv")
    assert "x0, x1, x2, x3, x4 and 2 more" in message
    assert "x5" not in message and "x6" not in message


def test_wide_columns_of_unknown_sensors(city, wide):
    with pytest.raises(DataError, match=r"^readings\.csv: readings for 1 sensor\(s\) .*: zz;"):
        read_city_folder(city(wide.assign(zz=1.0)))


def test_edges_naming_unknown_sensors_list_them(city, wide):
    edges = "source,target,weight\na,b,1\nq,a,1\nb,r,1\n"
    with pytest.raises(
        DataError,
        match=r"^edges\.csv: edges name 2 sensor\(s\) missing from sensors\.csv: q, r;",
    ):
        read_city_folder(city(wide, edges=edges))


@pytest.mark.parametrize(
    ("cell", "what"), [("fast", "not a number"), ("inf", "not a finite number")]
)
def test_value_that_is_not_a_number(city, rows, cell, what):
    text = rows("timestamp,a", ["2024-01-01 00:00,1", f"2024-01-01 00:05,{cell}"])
    with pytest.raises(DataError, match=rf"^readings\.csv: value '{cell}' \(line 3\) is {what};"):
        read_city_folder(city(text))


def test_unparseable_timestamp_is_quoted(city, rows):
    text = rows("timestamp,a", ["2024-01-01 00:00,1", "yesterday,2", "2024-01-01 00:10,3"])
    with pytest.raises(
        DataError, match=r"^readings\.csv: timestamp 'yesterday' \(line 3\) cannot be parsed"
    ):
        read_city_folder(city(text))


def test_empty_timestamp_names_its_line(city, rows):
    text = rows("timestamp,a", ["2024-01-01 00:00,1", ",2"])
    with pytest.raises(DataError, match=r"^readings\.csv: empty timestamp \(line 3\)"):
        read_city_folder(city(text))


def test_mixed_offsets_and_naive_times(city, rows):
    text = rows("timestamp,a", ["2024-01-01T00:00:00+00:00,1", "2024-01-01 00:05,2"])
    with pytest.raises(DataError, match=r"^readings\.csv: some timestamps carry a UTC offset"):
        read_city_folder(city(text))


def test_missing_sensors_csv(city, wide):
    with pytest.raises(DataError, match=r"^my-city/sensors\.csv is missing"):
        read_city_folder(city(wide, sensors=None))


def test_missing_readings(city):
    with pytest.raises(DataError, match=r"^my-city: no readings\.csv or readings\.parquet"):
        read_city_folder(city(None))


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        read_city_folder(tmp_path / "nowhere")


@pytest.mark.parametrize("content", ["", "timestamp,a,b\n", "timestamp,sensor_id,value\n"])
def test_readings_without_data_rows_are_empty(city, content):
    with pytest.raises(DataError, match=r"^readings\.csv: empty"):
        read_city_folder(city(content))


def test_parquet_without_rows_is_empty(city, wide):
    with pytest.raises(DataError, match=r"^readings\.parquet: empty"):
        read_city_folder(city(wide.iloc[:0], readings_name="readings.parquet"))


def test_binary_readings_csv_is_not_csv_text(city, wide):
    parquet_bytes = wide.to_parquet(index=False)  # under a .csv name
    with pytest.raises(DataError, match=r"^readings\.csv: not CSV text"):
        read_city_folder(city(parquet_bytes))


def test_binary_sensors_csv_is_not_csv_text(city, wide):
    with pytest.raises(DataError, match=r"^sensors\.csv: not CSV text"):
        read_city_folder(city(wide, sensors=b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"))


def test_readings_parquet_that_is_not_parquet(city, wide):
    with pytest.raises(DataError, match=r"^readings\.parquet: not a Parquet file"):
        read_city_folder(city(wide.to_csv(index=False), readings_name="readings.parquet"))


def test_off_grid_timestamp_with_inferred_step(city, rows):
    text = rows(
        "timestamp,a",
        [
            "2024-01-01 00:00,1",
            "2024-01-01 00:05,2",
            "2024-01-01 00:10,3",
            "2024-01-01 00:17,4",
            "2024-01-01 00:20,5",
            "2024-01-01 00:25,6",
        ],
    )
    with pytest.raises(
        DataError,
        match=r"^readings\.csv: timestamp '2024-01-01 00:17' \(line 5\) is off the regular "
        r"5min grid inferred from the data",
    ):
        read_city_folder(city(text))


def test_off_grid_first_row_is_the_one_named(city, rows):
    text = rows(
        "timestamp,a", ["2024-01-01 00:02,1", *[f"2024-01-01 00:{m:02d},2" for m in (5, 10, 15)]]
    )
    with pytest.raises(DataError, match=r"'2024-01-01 00:02' \(line 2\) is off the regular 5min"):
        read_city_folder(city(text))


def test_off_grid_timestamp_with_given_step(city, rows):
    text = rows("timestamp,a", TEN_MINUTES_THEN_FIVE)
    with pytest.raises(
        DataError,
        match=r"'2024-01-01 00:35' \(line 6\) is off the regular 10min grid given in dataset\.toml",
    ):
        read_city_folder(city(text, toml='frequency = "10min"\n'))
    with pytest.raises(DataError, match=r"'2024-01-01 00:35' \(line 6\) .* 10min grid inferred"):
        read_city_folder(city(text))


def test_grid_less_than_half_filled(city, rows):
    text = rows("timestamp,a", ["2024-01-01 00:00,1", "2024-01-01 00:05,2", "2024-01-01 01:00,3"])
    with pytest.raises(
        DataError, match=r"^readings\.csv: only 3 of 13 time steps of the 5min grid have readings"
    ):
        read_city_folder(city(text))


def test_grid_exactly_half_filled_is_accepted(city, rows):
    minutes = (0, 5, 15, 35)  # 4 of the 8 steps from 00:00 to 00:35
    text = rows("timestamp,a", [f"2024-01-01 00:{m:02d},1" for m in minutes])
    dataset = read_city_folder(city(text))
    assert dataset.num_steps == 8
    assert np.isnan(dataset.readings[:, 0, 0]).sum() == 4


@pytest.mark.parametrize(
    ("cell", "column", "limit"),
    [("90.5", "latitude", 90), ("-91", "latitude", 90), ("180.01", "longitude", 180)],
)
def test_coordinates_out_of_range(city, wide, cell, column, limit):
    sensors = "sensor_id,latitude,longitude\na,34.05,-118.25\nb,34.06,-118.25\n"
    sensors += f"c,{cell},-118.24\n" if column == "latitude" else f"c,34.05,{cell}\n"
    with pytest.raises(
        DataError,
        match=rf"^sensors\.csv: {column} '{cell}' of sensor 'c' \(line 4\) is missing or "
        rf"outside -{limit}\.\.{limit}",
    ):
        read_city_folder(city(wide, sensors=sensors))


def test_latitude_and_longitude_are_required(city, wide):
    with pytest.raises(DataError, match=r"^sensors\.csv: missing column\(s\) longitude"):
        read_city_folder(city(wide, sensors="sensor_id,latitude\na,1\nb,2\nc,3\n"))


def test_sensor_listed_twice(city, wide):
    sensors = "sensor_id,latitude,longitude\na,34,-118\nb,34,-118\na,35,-118\n"
    with pytest.raises(DataError, match=r"^sensors\.csv: sensor id 'a' appears twice \(line 4\)"):
        read_city_folder(city(wide, sensors=sensors))


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('frequency = "often"\n', r"^dataset\.toml: frequency 'often' is not understood"),
        ('timezone = "Mars/Olympus"\n', r"^dataset\.toml: timezone 'Mars/Olympus' is not known"),
        ('colour = "red"\n', r"^dataset\.toml: unknown key\(s\) colour"),
        ('neighbours = "8"\n', r"^dataset\.toml: `neighbours` has the wrong type"),
        ("null_value = true\n", r"^dataset\.toml: `null_value` has the wrong type"),
        ("name = \n", r"^dataset\.toml: not valid TOML"),
    ],
)
def test_bad_dataset_toml(city, wide, toml, message):
    with pytest.raises(DataError, match=message):
        read_city_folder(city(wide, toml=toml))


def test_dataset_toml_sets_the_metadata(city, wide):
    toml = 'name = "Springfield"\nquantity = "flow"\nunit = "veh/h"\nlicence = "CC-BY-4.0"\n'
    metadata = read_city_folder(city(wide, toml=toml)).metadata
    assert metadata.name == "Springfield"
    assert metadata.quantity == "flow"
    assert metadata.channels == ("flow",)
    assert metadata.unit == "veh/h"
    assert metadata.licence == "CC-BY-4.0"
    assert metadata.timezone == "UTC"


# --- kind, holidays and capacity ----------------------------------------------------------


def test_kind_declared_in_dataset_toml(city, wide):
    dataset = read_city_folder(city(wide, toml='kind = "occupancy"\n'))
    assert (dataset.kind, dataset.kind_source) == ("occupancy", "declared")
    assert dataset.non_negative


@pytest.mark.parametrize(
    ("change", "kind"),
    [(0.0, "count"), (0.5, "level"), (-100.0, "level")],
    ids=["integers", "a-fraction", "a-negative"],
)
def test_kind_inferred_from_the_readings(city, wide, change, kind):
    wide.loc[4, "c"] += change  # the fixture's readings are whole numbers ≥ 0
    dataset = read_city_folder(city(wide))
    assert (dataset.kind, dataset.kind_source) == (kind, "inferred")
    assert dataset.non_negative is (kind == "count")
    # a part keeps the whole series' kind, though its own readings could say otherwise
    assert dataset.slice_steps(0, 2).kind == kind


def test_holiday_country_and_subdivision(city, wide):
    metadata = read_city_folder(city(wide, toml='country = "DE"\nsubdivision = "BY"\n')).metadata
    assert (metadata.country, metadata.subdivision) == ("DE", "BY")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('kind = "speed"\n', r"`kind` 'speed' is unknown; choose one of level, count, occupancy"),
        ('subdivision = "BY"\n', r"`subdivision` needs `country`"),
        ('country = "XX"\n', r"country 'XX' has no holiday calendar"),
        ('country = "DE"\nsubdivision = "ZZ"\n', r"subdivision 'ZZ' of DE: "),
    ],
)
def test_bad_kind_or_holiday_region(city, wide, toml, message):
    with pytest.raises(DataError, match=r"^dataset\.toml: " + message) as error:
        read_city_folder(city(wide, toml=toml))
    assert "\n" not in str(error.value)


def test_capacity_column_is_read_with_nan_where_empty(city, wide):
    sensors = "sensor_id,latitude,longitude,capacity\na,34,-118,12\nb,34,-118,\nc,34,-118,40.5\n"
    capacity = read_city_folder(city(wide, sensors=sensors)).sensors.capacity
    np.testing.assert_array_equal(capacity, [12.0, np.nan, 40.5])
    assert read_city_folder(city(wide)).sensors.capacity is None


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("0", r"capacity '0' of sensor 'b' \(line 3\) is not positive"),
        ("-2", r"capacity '-2' of sensor 'b' \(line 3\) is not positive"),
        ("many", r"capacity 'many' \(line 3\) is not a number"),
    ],
)
def test_bad_capacity_names_its_line(city, wide, cell, message):
    sensors = f"sensor_id,latitude,longitude,capacity\na,34,-118,12\nb,34,-118,{cell}\nc,34,-118,\n"
    with pytest.raises(DataError, match=r"^sensors\.csv: " + message):
        read_city_folder(city(wide, sensors=sensors))


# --- graph --------------------------------------------------------------------------------


def test_graph_from_distances_uses_the_thresholded_gaussian_kernel(city, wide):
    # σ = std(100, 100, 1000) = sqrt(180000); w(100) = exp(-100²/180000) = exp(-1/18)
    # and w(1000) = exp(-50/9) ≈ 0.004 < 0.1: that edge is dropped.
    edges = "source,target,distance_m\na,b,100\nb,a,100\na,c,1000\n"
    graph = read_city_folder(city(wide, edges=edges)).graph
    assert graph.num_edges == 2
    assert sorted(zip(graph.sources.tolist(), graph.targets.tolist(), strict=True)) == [
        (0, 1),
        (1, 0),
    ]
    np.testing.assert_allclose(graph.weights, np.exp(-1 / 18), rtol=1e-6)


def test_kernel_sigma_and_threshold_from_dataset_toml(city, wide):
    edges = "source,target,distance_m\na,b,100\nb,a,100\na,c,1000\n"
    toml = "kernel_sigma_m = 1000\nkernel_threshold = 0.3\n"
    graph = read_city_folder(city(wide, edges=edges, toml=toml)).graph
    dense = graph.to_dense()
    assert graph.num_edges == 3
    assert dense[0, 2] == pytest.approx(np.exp(-1.0))
    assert dense[0, 1] == pytest.approx(np.exp(-0.01))
    strict = read_city_folder(city(wide, edges=edges, toml="kernel_threshold = 0.96\n")).graph
    assert strict.num_edges == 0  # exp(-1/18) ≈ 0.946 is below 0.96


def test_graph_from_weights_as_given(city, wide):
    edges = "source,target,weight\na,b,0.25\nb,c,2\nc,a,0\n"
    graph = read_city_folder(city(wide, edges=edges)).graph
    dense = graph.to_dense()
    assert graph.num_edges == 2  # zero weights are no edge
    assert dense[0, 1] == pytest.approx(0.25)
    assert dense[1, 2] == pytest.approx(2.0)
    assert dense[1, 0] == 0  # directed as written


@pytest.mark.parametrize("column", ["distance_m", "weight"])
def test_negative_edge_value_names_its_line(city, wide, column):
    edges = f"source,target,{column}\na,b,1\nb,c,-5\n"
    with pytest.raises(DataError, match=rf"^edges\.csv: {column} '-5' \(line 3\) is missing or"):
        read_city_folder(city(wide, edges=edges))


def test_edges_need_a_distance_or_weight(city, wide):
    with pytest.raises(DataError, match=r"^edges\.csv: needs a `distance_m` or a `weight`"):
        read_city_folder(city(wide, edges="source,target\na,b\n"))


SIX_SENSORS = """\
sensor_id,latitude,longitude
w1,52.5000,13.4000
w2,52.5010,13.4000
w3,52.5000,13.4020
e1,52.5000,13.6000
e2,52.5010,13.6000
e3,52.5000,13.6020
"""


def test_knn_graph_from_coordinates(city, rows):
    text = rows("timestamp,w1", ["2024-01-01 00:00,1", "2024-01-01 00:05,2"])
    graph = read_city_folder(city(text, sensors=SIX_SENSORS, toml="neighbours = 2\n")).graph
    dense = graph.to_dense()
    out_degree = (dense > 0).sum(axis=1)
    np.testing.assert_array_equal(out_degree, [2] * 6)  # two clusters of three: mutual
    np.testing.assert_array_equal(dense > 0, (dense > 0).T)
    np.testing.assert_allclose(dense, dense.T)
    assert np.diag(dense).sum() == 0
    assert dense[:3, 3:].sum() == 0 and dense[3:, :3].sum() == 0
    near = haversine_m(52.5, 13.4, 52.501, 13.4)
    far = haversine_m(52.5, 13.4, 52.5, 13.402)
    assert near < far and dense[0, 1] > dense[0, 2]  # the nearer, the heavier


def test_knn_default_neighbours_on_a_small_network(city, wide):
    graph = read_city_folder(city(wide)).graph  # 8 neighbours, but only 2 others exist
    dense = graph.to_dense()
    assert graph.num_edges == 6
    np.testing.assert_array_equal((dense > 0).sum(axis=1), [2, 2, 2])
    np.testing.assert_allclose(dense, dense.T)


def test_knn_out_degree_is_at_least_k(city, rows):
    rng = np.random.default_rng(5)
    lat = 48.8 + 0.1 * rng.random(40)
    lon = 2.3 + 0.1 * rng.random(40)
    sensors = "sensor_id,latitude,longitude\n" + "".join(
        f"s{i},{y:.5f},{x:.5f}\n" for i, (y, x) in enumerate(zip(lat, lon, strict=True))
    )
    text = rows("timestamp,s0", ["2024-01-01 00:00,1", "2024-01-01 00:05,2"])
    dense = read_city_folder(city(text, sensors=sensors, toml="neighbours = 3\n")).graph.to_dense()
    assert ((dense > 0).sum(axis=1) >= 3).all()
    np.testing.assert_array_equal(dense > 0, (dense > 0).T)
    for i in range(40):  # each sensor's three nearest are linked
        distances = haversine_m(lat[i], lon[i], lat, lon)
        nearest = np.argsort(distances)[1:4]
        assert (dense[i, nearest] > 0).all()


# --- the embedded Los-loop and the documented example -------------------------------------


@pytest.fixture(scope="module")
def los_loop():
    return read_city_folder(embedded_folder("los-loop"))


def test_embedded_los_loop(los_loop):
    assert los_loop.readings.shape == (2016, 207, 1)
    assert not np.isnan(los_loop.readings).any()
    assert los_loop.timestamps[0] == pd.Timestamp("2012-03-01 00:00", tz="America/Los_Angeles")
    assert los_loop.timestamps[-1] == pd.Timestamp("2012-03-07 23:55", tz="America/Los_Angeles")
    assert los_loop.metadata.frequency == "5min"
    assert los_loop.metadata.quantity == "speed"
    assert los_loop.sensors.ids[:2] == ("773869", "767541")
    assert los_loop.graph.num_edges == 2833
    dense = los_loop.graph.to_dense()
    np.testing.assert_allclose(dense, dense.T)  # the released adjacency is symmetric
    np.testing.assert_array_equal(np.diag(dense), 1.0)  # with a unit diagonal


def test_embedded_los_loop_graph_matches_the_released_adjacency(los_loop):
    # tests/fixtures/los-loop/los_adj.csv is an unchanged copy of the T-GCN release's file
    path = REPO / "tests" / "fixtures" / "los-loop" / "los_adj.csv"
    released = np.loadtxt(path, delimiter=",")
    assert int((released != 0).sum()) == 2833
    dense = los_loop.graph.to_dense()
    np.testing.assert_array_equal(dense != 0, released != 0)
    np.testing.assert_allclose(dense, released, rtol=1e-6)


def test_documented_example_folder():
    dataset = read_city_folder(EXAMPLE)
    assert dataset.metadata.name == "my-city"
    assert dataset.metadata.frequency == "15min"
    assert dataset.metadata.quantity == "flow"
    assert dataset.readings.shape == (96, 4, 1)  # one day at 15 minutes, four sensors
    assert dataset.timestamps[0] == pd.Timestamp("2024-05-14 00:00", tz="Europe/Paris")
    missing = np.isnan(dataset.readings[..., 0])
    assert missing[12:16].all()  # 03:00 to 03:45 are not in the file: a gap
    assert missing.sum() == 4 * 4 + 2  # the gap, an empty cell and a null_value cell
    assert dataset.sensors.names is not None and dataset.sensors.names[0] == "Rue de Rivoli"
    assert dataset.graph.num_edges > 0
    assert (dataset.graph.weights >= 0.1).all() and (dataset.graph.weights <= 1).all()
