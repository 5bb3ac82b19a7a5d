"""The installed package's version, read from its metadata (``pyproject.toml`` holds it once)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("urbanflow")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
