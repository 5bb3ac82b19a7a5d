"""Fixtures shared across the test layers: Los-loop and one model bundle trained on it."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import NamedTuple

import pytest

from urbanflow.cli import main
from urbanflow.data.catalog import load_dataset
from urbanflow.data.dataset import CityDataset


class TrainingRun(NamedTuple):
    bundle: Path  # the folder `urbanflow train --out` wrote
    output: str  # what the command printed


@pytest.fixture(scope="session")
def los_loop() -> CityDataset:
    return load_dataset("los-loop")


@pytest.fixture(scope="session")
def los_loop_training(tmp_path_factory: pytest.TempPathFactory) -> TrainingRun:
    """``urbanflow train``, end to end: STID for one epoch (seed 0) on Los-loop's
    default-protocol training part (~10 s), once per session. The CLI, the service and the
    demo tests all use this bundle rather than each training their own; treat it read-only."""
    bundle = tmp_path_factory.mktemp("los-loop-bundle") / "stid"
    args = ["train", "--model", "stid", "--max-epochs", "1", "--seed", "0", "--out", str(bundle)]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code in (0, None), printed.getvalue()
    return TrainingRun(bundle, printed.getvalue())


@pytest.fixture(scope="session")
def los_loop_bundle(los_loop_training: TrainingRun) -> Path:
    """The bundle folder of ``los_loop_training``."""
    return los_loop_training.bundle
