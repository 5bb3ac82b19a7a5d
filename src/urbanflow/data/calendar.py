"""Calendar features of grid steps: local weekday and time-of-day slot.

Steps past the end of a dataset have timestamps too (``start + i × step``), so forecasts can
use the calendar of their target times.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from urbanflow.data.dataset import CityDataset
from urbanflow.data.timegrid import steps_per_day
from urbanflow.errors import DataError


def step_times(dataset: CityDataset, indices: np.ndarray) -> pd.DatetimeIndex:
    """Local timestamps of grid steps ``indices`` (any shape, flattened), also past the end.

    Parameters
    ----------
    dataset
        The dataset whose grid (first timestamp, step, zone) is extended.
    indices
        Grid step indices, any shape; may lie past the last step.
    """
    nanoseconds = dataset.timestamps[0].value + np.ravel(indices).astype(np.int64) * (
        dataset.step.value
    )
    return pd.to_datetime(nanoseconds, utc=True).tz_convert(dataset.timestamps.tz)


def nanoseconds_of_day(stamps: pd.DatetimeIndex) -> np.ndarray:
    """``[k]`` wall-clock time since local midnight, in nanoseconds.

    Parameters
    ----------
    stamps
        ``[k]`` time-zone-aware timestamps.
    """
    seconds = stamps.hour * 3600 + stamps.minute * 60 + stamps.second
    return np.asarray(seconds, dtype=np.int64) * 10**9 + np.asarray(
        stamps.microsecond * 1000 + stamps.nanosecond, dtype=np.int64
    )


def calendar_slots(stamps: pd.DatetimeIndex, step: pd.Timedelta) -> tuple[np.ndarray, np.ndarray]:
    """``([k], [k])`` local weekday (Monday = 0) and time-of-day slot of each timestamp.

    Parameters
    ----------
    stamps
        ``[k]`` time-zone-aware timestamps.
    step
        The grid's step; slots are ``step`` wide, ``steps_per_day(step)`` a day.
    """
    slot = np.minimum(nanoseconds_of_day(stamps) // step.value, steps_per_day(step) - 1)
    return np.asarray(stamps.day_of_week, dtype=np.int64), slot


def holiday_flags(stamps: pd.DatetimeIndex, country: str, subdivision: str = "") -> np.ndarray:
    """``[k]`` bool: whether each local date is a public holiday (``holidays`` package).

    Parameters
    ----------
    stamps
        ``[k]`` time-zone-aware timestamps; their local date is looked up.
    country
        ISO 3166 country code (``US``, ``DE``); empty: no holidays (all False).
    subdivision
        State or province code within ``country``; empty: national holidays only.
    """
    if not country or len(stamps) == 0:
        return np.zeros(len(stamps), dtype=bool)
    import holidays  # imported when a dataset names a country

    dates = stamps.normalize().tz_localize(None)
    years = range(int(dates.year.min()), int(dates.year.max()) + 1)
    calendar = holidays.country_holidays(country, subdiv=subdivision or None, years=years)
    days = pd.DatetimeIndex(sorted(calendar.keys()))
    return np.asarray(dates.isin(days), dtype=bool)


def check_holiday_region(country: str, subdivision: str = "") -> None:
    """A DataError unless ``holidays`` knows ``country`` (and ``subdivision`` in it).

    Parameters
    ----------
    country
        ISO 3166 country code.
    subdivision
        State or province code within it; empty: none.
    """
    import holidays

    try:  # the country alone first: holidays raises NotImplementedError for both kinds of miss
        holidays.country_holidays(country)
    except NotImplementedError:
        raise DataError(
            f"country {country!r} has no holiday calendar; give an ISO 3166 code such as "
            "US, GB or DE (see the holidays package's list)"
        ) from None
    if not subdivision:
        return
    try:
        holidays.country_holidays(country, subdiv=subdivision)
    except Exception as error:  # holidays raises NotImplementedError/ValueError on subdivisions
        raise DataError(
            f"subdivision {subdivision!r} of {country}: {error}; give a valid code or none"
        ) from None


MIN_WEEKDAY_DAYS = 2  # each weekday seen on at least this many dates before weekdays are used


def weekdays_usable(stamps: pd.DatetimeIndex) -> bool:
    """Whether the steps span every weekday on at least two dates (each weekday is learnable).

    With less (Los-loop's one week), some weekday of the test part is never seen in training
    and a weekday feature would hold nothing learned for it; models then leave weekdays out.

    Parameters
    ----------
    stamps
        ``[k]`` time-zone-aware timestamps of the training part.
    """
    dates = pd.DatetimeIndex(stamps.normalize().unique())
    counts = np.bincount(np.asarray(dates.day_of_week, dtype=np.int64), minlength=7)
    return bool((counts >= MIN_WEEKDAY_DAYS).all())


def day_types(
    stamps: pd.DatetimeIndex, weekdays: bool, country: str = "", subdivision: str = ""
) -> np.ndarray:
    """``[k]`` int64 day type of each timestamp: what the models' weekday feature reads.

    With ``weekdays``: the local weekday (Monday = 0), a public holiday counting as a Sunday
    (6). Without: 0 for every day, so the feature holds no weekday (and no holiday) at all.

    Parameters
    ----------
    stamps
        ``[k]`` time-zone-aware timestamps.
    weekdays
        Whether weekday features are used (:func:`weekdays_usable` on the training part).
    country
        ISO 3166 code of the holiday calendar; empty: no holidays.
    subdivision
        State or province code within ``country``; empty: national holidays only.
    """
    if not weekdays:
        return np.zeros(len(stamps), dtype=np.int64)
    weekday = np.asarray(stamps.day_of_week, dtype=np.int64)
    return np.where(holiday_flags(stamps, country, subdivision), 6, weekday)
