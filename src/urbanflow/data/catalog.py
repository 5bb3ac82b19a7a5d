"""Datasets by name or path: the embedded Los-loop, downloaded standard sets, user folders."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from urbanflow.data.dataset import CityDataset
from urbanflow.data.readers.city_folder import is_city_folder, read_city_folder
from urbanflow.errors import DataError, UnknownNameError

EMBEDDED = ("los-loop",)


def embedded_folder(name: str) -> Path:
    """The city folder of an embedded dataset, inside the installed package."""
    return Path(str(resources.files("urbanflow") / "datasets" / name))


def dataset_names() -> list[str]:
    return list(EMBEDDED)


def load_dataset(name_or_path: str | Path) -> CityDataset:
    """An embedded dataset by name, or a city folder by path."""
    text = str(name_or_path)
    if text in EMBEDDED:
        return read_city_folder(embedded_folder(text))
    path = Path(text).expanduser()
    if path.exists():
        if is_city_folder(path):
            return read_city_folder(path)
        raise DataError(
            f"{path}: not a dataset this version can read; give a city folder "
            "(readings.csv or readings.parquet beside sensors.csv, see docs/data-format.md)"
        )
    raise UnknownNameError(
        f"no dataset named or at {text!r}; built-in names: {', '.join(dataset_names())}, "
        "or give the path of a city folder"
    )
