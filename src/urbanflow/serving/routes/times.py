"""Times in the routes' answers: ISO 8601 with the UTC offset of the dataset's time zone."""

from __future__ import annotations

import pandas as pd


def local_iso(stamps: pd.DatetimeIndex | pd.Timestamp, timezone: str) -> list[str] | str:
    """ISO 8601 text with the UTC offset of ``timezone``."""
    if isinstance(stamps, pd.Timestamp):
        return stamps.tz_convert(timezone).isoformat()
    return [stamp.isoformat() for stamp in stamps.tz_convert(timezone)]
