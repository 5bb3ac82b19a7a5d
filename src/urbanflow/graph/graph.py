"""The sensor graph: a sparse, weighted, directed edge list over sensor indices.

Connectivity is one value, stored as COO arrays, and converted explicitly to the form a
consumer needs (dense matrix for small graphs, SciPy CSR, PyTorch ``edge_index``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse

from urbanflow.errors import DataError


@dataclass(frozen=True)
class SensorGraph:
    """Weighted edges ``source -> target`` between ``num_sensors`` sensors.

    ``sources``, ``targets``: ``[e]`` int64 sensor indices; ``weights``: ``[e]`` float32 > 0.
    Self loops are allowed; duplicate edges are not (builders merge them).
    """

    num_sensors: int
    sources: np.ndarray
    targets: np.ndarray
    weights: np.ndarray

    def __post_init__(self) -> None:
        sources = np.asarray(self.sources, dtype=np.int64)
        targets = np.asarray(self.targets, dtype=np.int64)
        weights = np.asarray(self.weights, dtype=np.float32)
        object.__setattr__(self, "sources", sources)
        object.__setattr__(self, "targets", targets)
        object.__setattr__(self, "weights", weights)
        if not (sources.shape == targets.shape == weights.shape) or sources.ndim != 1:
            raise DataError(
                "graph edges: sources, targets and weights must be 1-D arrays of one length; "
                f"got {sources.shape}, {targets.shape}, {weights.shape}"
            )
        if sources.size and (
            min(sources.min(), targets.min()) < 0
            or max(sources.max(), targets.max()) >= self.num_sensors
        ):
            raise DataError(
                f"graph edges: a sensor index is outside 0..{self.num_sensors - 1}; "
                "build the graph from the dataset's own sensor list"
            )
        if not np.all(np.isfinite(weights)):
            raise DataError("graph edges: a weight is NaN or infinite; give finite weights")

    @property
    def num_edges(self) -> int:
        return int(self.sources.size)

    @classmethod
    def empty(cls, num_sensors: int) -> SensorGraph:
        none = np.zeros(0, dtype=np.int64)
        return cls(num_sensors, none, none, np.zeros(0, dtype=np.float32))

    @classmethod
    def from_dense(cls, matrix: np.ndarray) -> SensorGraph:
        """Edges where ``matrix[i, j] != 0``, weight ``matrix[i, j]`` (row = source)."""
        matrix = np.asarray(matrix)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise DataError(f"adjacency must be a square matrix; got shape {matrix.shape}")
        rows, cols = np.nonzero(matrix)
        return cls(matrix.shape[0], rows, cols, matrix[rows, cols])

    @classmethod
    def from_edges(
        cls, num_sensors: int, sources: np.ndarray, targets: np.ndarray, weights: np.ndarray
    ) -> SensorGraph:
        """Build from possibly repeated edges: repeats keep their largest weight."""
        order = np.lexsort((-np.asarray(weights), targets, sources))
        src = np.asarray(sources)[order]
        dst = np.asarray(targets)[order]
        w = np.asarray(weights)[order]
        keep = np.ones(src.size, dtype=bool)
        keep[1:] = (src[1:] != src[:-1]) | (dst[1:] != dst[:-1])
        return cls(num_sensors, src[keep], dst[keep], w[keep])

    def to_scipy(self) -> sparse.csr_matrix:
        """``[n n]`` CSR matrix, row = source sensor."""
        return sparse.csr_matrix(
            (self.weights, (self.sources, self.targets)), shape=(self.num_sensors,) * 2
        )

    def to_dense(self) -> np.ndarray:
        """``[n n]`` float32 matrix. Memory is O(n²): for small graphs and models that need it."""
        dense = np.zeros((self.num_sensors, self.num_sensors), dtype=np.float32)
        dense[self.sources, self.targets] = self.weights
        return dense

    def edge_index(self) -> np.ndarray:
        """``[2 e]`` int64 (source row, target row), the layout graph libraries use."""
        return np.stack([self.sources, self.targets])
