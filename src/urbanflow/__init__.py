"""urbanflow: forecasts for the flows a city's sensors measure."""

from urbanflow.data.dataset import CityDataset, DatasetMetadata, Sensors
from urbanflow.errors import UrbanflowError
from urbanflow.graph.graph import SensorGraph

__version__ = "0.1.0"

__all__ = [
    "CityDataset",
    "DatasetMetadata",
    "SensorGraph",
    "Sensors",
    "UrbanflowError",
    "__version__",
]
