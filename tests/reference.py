"""Reference figures the tests compare urbanflow with, computed without urbanflow's code.

Plain NumPy and pandas on the packaged Los-loop readings file, following the protocol as
docs/evaluation.md states it, so that a figure the code prints is checked against a second,
independent implementation rather than against a number copied from an earlier run.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

import numpy as np
import pandas as pd

LOS_LOOP_READINGS = files("urbanflow") / "datasets" / "los-loop" / "readings.parquet"


@cache
def los_loop_speeds() -> np.ndarray:
    """``[t n]`` Los-loop speeds (mph) as float64: the Parquet file's columns after the
    timestamp, one per sensor, rows in time order (the file has no missing reading)."""
    with LOS_LOOP_READINGS.open("rb") as file:
        frame = pd.read_parquet(file)
    speeds = frame.drop(columns="timestamp").to_numpy(np.float64)
    speeds.setflags(write=False)
    return speeds


def tgcn_persistence(horizon_steps: int, input_len: int = 12) -> dict[str, float]:
    """MAE and RMSE of the last-value forecast on Los-loop under the ``tgcn`` protocol.

    The test part is the rows from ``int(0.8·T)`` on; windows ``i = 0 … len(test) − L − h − 1``
    take inputs ``test[i : i+L]`` and targets ``test[i+L : i+L+h]``; errors are pooled over
    steps 1…h. Los-loop has no missing reading, so the last value is ``test[i+L−1]``.
    """
    speeds = los_loop_speeds()
    test = speeds[int(0.8 * len(speeds)) :]
    windows = len(test) - input_len - horizon_steps
    last = test[input_len - 1 : input_len - 1 + windows]
    errors = np.stack(
        [test[input_len + k : input_len + k + windows] - last for k in range(horizon_steps)]
    )
    return {"mae": float(np.abs(errors).mean()), "rmse": float(np.sqrt((errors**2).mean()))}
