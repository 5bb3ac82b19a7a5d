"""What `urbanflow serve` is started with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from urbanflow.errors import ConfigError

TOKEN_VARIABLE = "URBANFLOW_TOKEN"
"""The environment variable `urbanflow serve` reads the write token from."""


@dataclass(frozen=True)
class ServeSettings:
    """``model_dir``: a bundle from `urbanflow train`; ``store_path``: the DuckDB file;
    ``token``: when set, write requests need ``Authorization: Bearer <token>``;
    ``issue_share``: the share of the model's sensors whose readings complete a step (which
    issues its forecast); ``levels``: interval levels in percent (when the bundle has a
    calibration); ``keep_forecasts``: how long stored forecasts are kept (None: forever);
    ``alerts``: a TOML file of alert rules (None: no alerts)."""

    model_dir: Path
    store_path: Path
    token: str | None = None
    issue_share: float = 0.8
    levels: tuple[float, ...] = (80.0, 95.0)
    keep_forecasts: timedelta | None = timedelta(days=7)
    alerts: Path | None = None

    def __post_init__(self) -> None:
        if not 0 < self.issue_share <= 1:
            raise ConfigError(
                f"--issue-share {self.issue_share} must be in (0, 1]: the share of the model's "
                "sensors whose readings complete a step, e.g. 0.8"
            )
