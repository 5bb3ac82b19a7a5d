"""What `urbanflow serve` is started with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TOKEN_VARIABLE = "URBANFLOW_TOKEN"
"""The environment variable `urbanflow serve` reads the write token from."""


@dataclass(frozen=True)
class ServeSettings:
    """``model_dir``: a bundle from `urbanflow train`; ``store_path``: the DuckDB file;
    ``token``: when set, write requests need ``Authorization: Bearer <token>``."""

    model_dir: Path
    store_path: Path
    token: str | None = None
