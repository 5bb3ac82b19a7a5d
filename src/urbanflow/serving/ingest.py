"""Turn a ``POST /v1/readings`` body (JSON list or CSV) into a validated batch.

Pure functions: they read bytes and rules and return a frame ``sensor_id, ts, value`` (``ts``
UTC without zone, ``value`` NaN for "no reading") or raise a one-line error naming the row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import TypeAdapter, ValidationError

from urbanflow.data.timegrid import OFFSET_SUFFIX
from urbanflow.errors import DataError, PayloadTooLargeError
from urbanflow.serving.schemas import MAX_ROWS, ReadingIn

MAX_BODY_BYTES = 64 * 1024 * 1024
COLUMNS = ("sensor_id", "timestamp", "value")
EARLIEST = pd.Timestamp("1970-01-01", tz="UTC").as_unit("us")
_READINGS = TypeAdapter(list[ReadingIn])
_BELOW_MICROSECOND = r"[.,]\d{6}\d*[1-9]"  # a non-zero digit after the sixth decimal


@dataclass(frozen=True)
class ReadingRules:
    """What a reading must satisfy: a known sensor, a time on the grid, not in the future."""

    sensor_ids: frozenset[str]
    timezone: str
    step: pd.Timedelta
    now: pd.Timestamp


@dataclass(frozen=True)
class ParsedBody:
    """``sensor_id``, ``timestamp`` (text), ``value`` (float, NaN for null) and row labels."""

    frame: pd.DataFrame
    row: Callable[[int], str]


def check_size(body: bytes) -> None:
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLargeError(
            f"the body has {len(body):,} bytes, more than {MAX_BODY_BYTES:,}; "
            f"send at most {MAX_ROWS:,} readings a request"
        )
    if not body.strip():
        raise DataError(
            "the body is empty; send a JSON list of {sensor_id, timestamp, value} objects "
            "or a CSV with those columns"
        )


def parse_json(body: bytes) -> ParsedBody:
    check_size(body)
    try:
        readings = _READINGS.validate_json(body)
    except ValidationError as error:
        raise DataError(_describe_json_error(error)) from None
    _check_rows(len(readings))
    frame = pd.DataFrame(
        {
            "sensor_id": [r.sensor_id for r in readings],
            "timestamp": [r.timestamp for r in readings],
            "value": np.array(
                [np.nan if r.value is None else r.value for r in readings], dtype=np.float64
            ),
        }
    )
    return ParsedBody(frame, lambda i: f"item [{i}]")


def parse_csv(body: bytes) -> ParsedBody:
    check_size(body)
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(f"the CSV body is not UTF-8 ({error.reason}); send UTF-8 CSV") from None
    reader = csv.reader(io.StringIO(text))
    header = [field.strip() for field in next(reader, [])]
    if tuple(header) != COLUMNS:
        raise DataError(
            f"the CSV header is {','.join(header)}; it must be exactly {','.join(COLUMNS)}"
        )
    fields: list[list[str]] = []
    lines: list[int] = []
    try:
        for record in reader:
            if not record:  # a blank line
                continue
            if len(record) != len(COLUMNS):
                raise DataError(
                    f"line {reader.line_num}: {len(record)} fields, expected "
                    f"{len(COLUMNS)} ({','.join(COLUMNS)}); quote values that hold commas"
                )
            fields.append(record)
            lines.append(reader.line_num)
    except csv.Error as error:
        raise DataError(f"line {reader.line_num}: the CSV cannot be read ({error})") from None
    _check_rows(len(fields))
    raw = pd.DataFrame(fields, columns=list(COLUMNS), dtype=str)
    row = lambda i: f"line {lines[i]}"  # noqa: E731
    value_text = raw["value"].str.strip()
    values = pd.to_numeric(value_text.where(value_text != "", None), errors="coerce")
    values = values.astype(np.float64)
    bad = np.flatnonzero(
        ((value_text != "") & values.isna()).to_numpy() | np.isinf(values.to_numpy())
    )
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"{row(i)}: value {raw['value'].iloc[i]!r} is not a finite number; "
            "write a number, or leave it empty for no reading"
        )
    empty_ids = np.flatnonzero((raw["sensor_id"].str.strip() == "").to_numpy())
    if empty_ids.size:
        raise DataError(f"{row(int(empty_ids[0]))}: sensor_id is empty; give the sensor's id")
    frame = pd.DataFrame(
        {"sensor_id": raw["sensor_id"].str.strip(), "timestamp": raw["timestamp"], "value": values}
    )
    return ParsedBody(frame, row)


def validate(parsed: ParsedBody, rules: ReadingRules) -> pd.DataFrame:
    """The batch as ``sensor_id, ts`` (UTC, naive), ``value``; raises on the first bad row."""
    frame, row = parsed.frame, parsed.row
    unknown = sorted(set(frame["sensor_id"]) - rules.sensor_ids)
    if unknown:
        shown = ", ".join(repr(s) for s in unknown[:10])
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise DataError(
            f"unknown sensors {shown}{more}; the model knows {len(rules.sensor_ids)} sensors "
            "(GET /v1/sensors)"
        )
    # Parsing keeps microseconds: note finer digits now, they put a time off any grid.
    finer = frame["timestamp"].str.contains(_BELOW_MICROSECOND, regex=True).to_numpy()
    stamps = parse_reading_times(frame["timestamp"], rules.timezone, row)
    future = np.flatnonzero(stamps > rules.now + rules.step)
    if future.size:
        i = int(future[0])
        raise DataError(
            f"{row(i)}: timestamp {frame['timestamp'].iloc[i]!r} is in the future (server time "
            f"{rules.now.isoformat(timespec='seconds')}); check the sensor's clock"
        )
    ancient = np.flatnonzero(stamps < EARLIEST)
    if ancient.size:
        i = int(ancient[0])
        raise DataError(
            f"{row(i)}: timestamp {frame['timestamp'].iloc[i]!r} is before "
            f"{EARLIEST.year}; check the year"
        )
    local = stamps.tz_convert(rules.timezone).tz_localize(None)
    misaligned = (local - EARLIEST.tz_localize(None)) % rules.step != pd.Timedelta(0)
    off_grid = np.flatnonzero(finer | np.asarray(misaligned))
    if off_grid.size:
        i = int(off_grid[0])
        raise DataError(
            f"{row(i)}: timestamp {frame['timestamp'].iloc[i]!r} is not on the dataset's grid "
            f"of one reading every {step_text(rules.step)}; round it to the grid"
        )
    batch = pd.DataFrame(
        {
            "sensor_id": frame["sensor_id"].to_numpy(dtype=object),
            "ts": stamps.tz_convert("UTC").tz_localize(None),
            "value": frame["value"].to_numpy(dtype=np.float64),
        }
    )
    repeated = np.flatnonzero(batch.duplicated(["sensor_id", "ts"], keep=False).to_numpy())
    if repeated.size:
        first = int(repeated[0])
        key = (batch["sensor_id"].iloc[first], batch["ts"].iloc[first])
        same = batch.index[(batch["sensor_id"] == key[0]) & (batch["ts"] == key[1])]
        raise DataError(
            f"{row(int(same[0]))} and {row(int(same[1]))}: sensor {key[0]!r} has two readings "
            f"at {frame['timestamp'].iloc[first]}; send one reading per sensor and time"
        )
    return batch


def parse_reading_times(
    texts: pd.Series, timezone: str, row: Callable[[int], str]
) -> pd.DatetimeIndex:
    """UTC times (microseconds: any year parses) from ISO 8601 text; text without an offset
    is local time in ``timezone``.

    Unlike ``data.timegrid.parse_timestamps`` (whole files: one convention throughout, the
    repeated autumn hour told apart by file order), a live batch may mix offsets and naive
    times, and a naive time that a daylight-saving change repeats or skips is refused.
    """
    texts = texts.astype(str).str.strip().reset_index(drop=True)
    has_offset = texts.str.contains(OFFSET_SUFFIX, regex=True).to_numpy()
    result = pd.Series(pd.NaT, index=texts.index, dtype="datetime64[us, UTC]")
    if has_offset.any():
        result[has_offset] = pd.to_datetime(
            texts[has_offset], format="ISO8601", utc=True, errors="coerce"
        ).dt.as_unit("us")
    naive = ~has_offset
    if naive.any():
        parsed = pd.to_datetime(texts[naive], format="ISO8601", errors="coerce")
        unreadable = np.flatnonzero(parsed.isna().to_numpy())
        if unreadable.size:
            i = int(np.flatnonzero(naive)[unreadable[0]])
            raise _bad_time(texts, i, row)
        local = pd.DatetimeIndex(parsed).tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
        gaps = np.flatnonzero(local.isna())
        if gaps.size:
            i = int(np.flatnonzero(naive)[gaps[0]])
            raise DataError(
                f"{row(i)}: local time {texts[i]!r} does not exist or occurs twice in "
                f"{timezone} (a daylight-saving change); add the UTC offset, e.g. "
                "2024-11-03T01:30:00-07:00"
            )
        result[naive] = local.tz_convert("UTC").as_unit("us")
    missing = np.flatnonzero(result.isna().to_numpy())
    if missing.size:
        raise _bad_time(texts, int(missing[0]), row)
    return pd.DatetimeIndex(result)


def step_text(step: pd.Timedelta) -> str:
    """``5 minutes``, ``1 hour``, ``1 day``: a grid step in words."""
    for unit, size in (("day", "1D"), ("hour", "1h"), ("minute", "1min"), ("second", "1s")):
        count = step / pd.Timedelta(size)
        if count >= 1 and count == int(count):
            return f"{int(count)} {unit}{'s' if count != 1 else ''}"
    return str(step)


def _bad_time(texts: pd.Series, i: int, row: Callable[[int], str]) -> DataError:
    return DataError(
        f"{row(i)}: timestamp {texts[i]!r} is not an ISO 8601 time; write e.g. "
        "2012-03-07T08:05:00-08:00"
    )


def _check_rows(count: int) -> None:
    if count == 0:
        raise DataError("the body holds no readings; send at least one")
    if count > MAX_ROWS:
        raise PayloadTooLargeError(
            f"{count:,} readings in one request, more than {MAX_ROWS:,}; split the batch"
        )


def _describe_json_error(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    location = first.get("loc", ())
    if first.get("type") == "json_invalid":
        return f"the body is not valid JSON ({first.get('msg')}); send a JSON list of readings"
    if not location or not isinstance(location[0], int):
        return (
            "the body must be a JSON list of {sensor_id, timestamp, value} objects "
            f"({first.get('msg')})"
        )
    field = ".".join(str(part) for part in location[1:]) or "reading"
    received = first.get("input")
    shown = "" if isinstance(received, dict | list) else f" (got {received!r})"
    count = error.error_count()
    more = f"; {count - 1} more error(s) after it" if count > 1 else ""
    return f"item [{location[0]}]: {field}: {first.get('msg')}{shown}{more}"
