"""urbanflow: forecasts for the flows a city's sensors measure."""

from urbanflow.data.dataset import CityDataset, DatasetMetadata, Sensors
from urbanflow.errors import UrbanflowError
from urbanflow.graph.graph import SensorGraph
from urbanflow.version import __version__

__all__ = [
    "CityDataset",
    "DatasetMetadata",
    "SensorGraph",
    "Sensors",
    "UrbanflowError",
    "__version__",
]
