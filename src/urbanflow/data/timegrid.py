"""Timestamps onto a regular grid: frequency parsing, time zones, step inference.

All grid arithmetic is in absolute time (UTC nanoseconds), so a daylight-saving change
neither opens a gap (spring) nor creates duplicates (autumn) in the grid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import tzinfo

import numpy as np
import pandas as pd

from urbanflow.errors import DataError

OFFSET_SUFFIX = re.compile(r"(?:Z|[+-]\d{2}(?::?\d{2})?)$")  # a time written with its UTC offset
NS_PER_DAY = 86_400 * 10**9


def parse_frequency(text: str) -> pd.Timedelta:
    """A pandas alias (``5min``, ``15min``, ``1h``) or an ISO 8601 duration (``PT5M``).

    Parameters
    ----------
    text
        The frequency as written by the user.
    """
    cleaned = str(text).strip()
    try:
        if cleaned.upper().startswith("P"):
            if "M" in cleaned.upper().partition("T")[0]:  # pandas would read P1M as a minute
                raise ValueError("months are not a fixed duration")
            step = pd.Timedelta(cleaned.upper())
        else:
            step = pd.Timedelta(pd.tseries.frequencies.to_offset(cleaned))
    except (ValueError, TypeError):
        raise DataError(
            f"frequency {text!r} is not understood; use a pandas alias such as '5min', "
            "'15min', '1h' or an ISO 8601 duration such as 'PT5M'"
        ) from None
    if step <= pd.Timedelta(0):
        raise DataError(f"frequency {text!r} must be a positive duration")
    return step


def frequency_alias(step: pd.Timedelta) -> str:
    """The canonical pandas alias of a step, e.g. ``5min``, ``1h`` (never a bare ``h``).

    Parameters
    ----------
    step
        A positive duration.
    """
    alias = pd.tseries.frequencies.to_offset(step).freqstr
    return alias if alias[0].isdigit() else f"1{alias}"


def check_timezone(timezone: str | tzinfo) -> str | tzinfo:
    """``timezone`` if it is a known IANA name (or a time-zone object), else a ``DataError``.

    Parameters
    ----------
    timezone
        An IANA name such as ``America/Los_Angeles`` or ``UTC``, or a ``tzinfo``.
    """
    try:
        if not timezone:
            raise ValueError("empty")
        pd.Timestamp(0, tz=timezone)
    except Exception:  # unknown zone names raise several types (KeyError, OSError, ...)
        raise DataError(
            f"timezone {timezone!r} is not known; use an IANA name such as "
            "'America/Los_Angeles' or 'UTC'"
        ) from None
    return timezone


def parse_local_time(text: str | pd.Timestamp, timezone: str | tzinfo, what: str) -> pd.Timestamp:
    """A time a user gives: naive text is local time in ``timezone``; text with an offset is
    used as given. Returned in ``timezone``.

    A naive time that a daylight-saving change skips or repeats is refused (give the offset).

    Parameters
    ----------
    text
        The time as text (``2012-03-07 08:00``, ``2012-03-07T08:00-08:00``) or a timestamp.
    timezone
        The dataset's zone: an IANA name or a ``tzinfo``.
    what
        What the time is, for messages (``start``, ``issue time``).
    """
    check_timezone(timezone)
    try:
        stamp = pd.Timestamp(text.strip() if isinstance(text, str) else text)
    except (ValueError, TypeError, OverflowError):
        stamp = pd.NaT
    if stamp is pd.NaT:
        raise DataError(
            f"{what} {text!r} is not a date and time (cannot be parsed); "
            "write e.g. 2012-03-07 08:00"
        )
    try:
        if stamp.tz is None:
            return stamp.tz_localize(timezone, ambiguous="raise", nonexistent="raise")
        return stamp.tz_convert(timezone)
    except pd.errors.OutOfBoundsDatetime:
        raise DataError(f"{what} {text!r} is out of range; write e.g. 2012-03-07 08:00") from None
    except ValueError:
        raise DataError(
            f"{what} {text!r} does not exist or is ambiguous in {timezone} (a daylight-saving "
            "change); give it with its UTC offset, e.g. '2012-11-04 01:30-07:00'"
        ) from None


def steps_per_day(step: pd.Timedelta) -> int:
    """Steps of a grid in one day, rounded up (1 for steps of a day or more).

    A 7-minute grid has 206: the 206th step of a day starts at 23:55 and runs past midnight.

    Parameters
    ----------
    step
        The grid's step, a positive duration.
    """
    return max(1, -(-NS_PER_DAY // step.value))


def infer_step(times_ns: np.ndarray) -> pd.Timedelta:
    """The most common gap between consecutive distinct times (ties: the smallest).

    Parameters
    ----------
    times_ns
        ``[r]`` int64 times (UTC ns), any order, repeats allowed.
    """
    distinct = np.unique(times_ns)
    if distinct.size < 2:
        raise DataError("only one distinct timestamp: cannot infer the step; set `frequency`")
    gaps, counts = np.unique(np.diff(distinct), return_counts=True)
    return pd.Timedelta(int(gaps[np.argmax(counts)]), unit="ns")


@dataclass(frozen=True)
class ParsedTimes:
    """Per-row absolute times (``[r]`` int64 UTC ns), NaT rows flagged in ``invalid``.

    Parameters
    ----------
    utc_ns
        ``[r]`` int64 UTC nanoseconds (0 where invalid).
    invalid
        ``[r]`` bool, rows that could not be placed in time.
    problem
        Why: ``unparseable`` or ``nonexistent``; empty when none.
    """

    utc_ns: np.ndarray
    invalid: np.ndarray
    problem: str = ""


def parse_timestamps(texts: pd.Series, occurrence: np.ndarray, timezone: str) -> ParsedTimes:
    """Parse timestamp texts row by row into absolute time.

    Texts with an offset (``Z``, ``+02:00``) are used as given. Naive texts are local time in
    ``timezone``; ``occurrence`` (0, 1, …) is how often the same naive text was already seen
    for the same sensor in file order, which resolves the repeated autumn hour: the first
    occurrence is daylight time, the second standard time.

    Parameters
    ----------
    texts
        ``[r]`` timestamp texts, one per row.
    occurrence
        ``[r]`` int, how often the same naive text was seen before for the same sensor.
    timezone
        IANA zone of naive texts.
    """
    uniques, codes = _factorize(texts)
    has_offset = np.array([bool(OFFSET_SUFFIX.search(u)) for u in uniques])
    if has_offset.any() and not has_offset.all():
        first = uniques[int(np.argmin(has_offset))]
        raise DataError(
            f"some timestamps carry a UTC offset and some do not (first without: {first!r}); "
            "write every timestamp the same way"
        )
    parsed = _to_datetime(pd.Series(uniques), utc=bool(has_offset.any()))
    bad = parsed.isna().to_numpy()
    if bad.any():
        return ParsedTimes(np.zeros(len(codes), np.int64), bad[codes], "unparseable")
    if has_offset.any():
        utc = pd.DatetimeIndex(parsed).as_unit("ns").asi8
        return ParsedTimes(utc[codes], np.zeros(len(codes), bool))
    naive = pd.DatetimeIndex(parsed).as_unit("ns")
    check_timezone(timezone)
    daylight = naive.tz_localize(timezone, ambiguous=np.ones(len(naive), bool), nonexistent="NaT")
    standard = naive.tz_localize(timezone, ambiguous=np.zeros(len(naive), bool), nonexistent="NaT")
    nonexistent = daylight.isna()
    if nonexistent.any():
        return ParsedTimes(np.zeros(len(codes), np.int64), nonexistent[codes], "nonexistent")
    per_row = np.where(occurrence > 0, standard.asi8[codes], daylight.asi8[codes])
    return ParsedTimes(per_row, np.zeros(len(codes), bool))


def _factorize(texts: pd.Series) -> tuple[list[str], np.ndarray]:
    codes, uniques = pd.factorize(texts.astype(str).str.strip())
    return list(uniques), codes


def _to_datetime(texts: pd.Series, utc: bool) -> pd.Series:
    """ISO 8601 first (fast, exact); else a format pandas infers from the first text."""
    try:
        return pd.to_datetime(texts, format="ISO8601", utc=utc)
    except (ValueError, TypeError):
        pass
    try:
        return pd.to_datetime(texts, errors="coerce", utc=utc)
    except (ValueError, TypeError):
        return pd.Series(pd.NaT, index=texts.index)


@dataclass(frozen=True)
class Grid:
    """A regular grid: ``start`` UTC ns, ``step`` ns, ``length`` steps.

    Parameters
    ----------
    start
        First step, UTC ns.
    step
        Step, ns.
    length
        Number of steps.
    """

    start: int
    step: int
    length: int

    def positions(self, utc_ns: np.ndarray) -> np.ndarray:
        """``[r]`` step index of each time (times off the grid round down).

        Parameters
        ----------
        utc_ns
            ``[r]`` int64 UTC ns on the grid.
        """
        return (utc_ns - self.start) // self.step

    def index(self, timezone: str) -> pd.DatetimeIndex:
        """``[length]`` the grid's timestamps, shown in ``timezone``.

        Parameters
        ----------
        timezone
            IANA zone the timestamps are shown in.
        """
        utc_ns = self.start + self.step * np.arange(self.length, dtype=np.int64)
        return pd.to_datetime(utc_ns, unit="ns", utc=True).tz_convert(timezone)


def fit_grid(utc_ns: np.ndarray, step: pd.Timedelta | None) -> tuple[Grid, int | None]:
    """The grid that holds every time, and the first row off it (None if all are on it).

    The grid's phase is the one most rows share (ties: the earliest time's), so a single
    stray first row is the one reported, not every row after it.

    Parameters
    ----------
    utc_ns
        ``[r]`` int64 UTC ns of the rows.
    step
        The grid's step; None: inferred (:func:`infer_step`).
    """
    step_ns = (step if step is not None else infer_step(utc_ns)).value
    phase = (utc_ns - utc_ns.min()) % step_ns
    phases, counts = np.unique(phase, return_counts=True)
    off = phase != phases[np.argmax(counts)]
    first_off = int(np.argmax(off)) if off.any() else None
    start = int(utc_ns[~off].min())
    length = int((utc_ns.max() - start) // step_ns) + 1
    return Grid(start, step_ns, length), first_off
