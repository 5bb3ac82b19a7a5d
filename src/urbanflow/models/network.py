"""What every neural network in urbanflow receives and returns, and graph operators in torch.

A network is an ``nn.Module`` built as ``Network(spec, **hyperparameters)`` and called as
``network(x, tod, dow)``:

- ``x``: ``[b L n c]`` inputs, channel 0 the z-scored reading (0 where missing), channel 1
  the mask (1 = present); ``c = spec.in_channels``;
- ``tod``: ``[b L]`` int64 time-of-day slot of each input step, ``0 … steps_per_day-1``;
- ``dow``: ``[b L]`` int64 local weekday of each input step, Monday = 0;
- returns ``[b H n]``: z-scored forecasts for the next ``H = spec.horizon`` steps.

Graph operators are sparse torch tensors built from the dataset's ``SensorGraph``; a network
that needs a dense ``[n n]`` matrix (an adaptive adjacency) says so and documents its limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy import sparse

from urbanflow.graph.graph import SensorGraph

IN_CHANNELS = 2  # z-scored value, presence mask


@dataclass(frozen=True)
class NetworkSpec:
    """The shapes and graph a network is built for."""

    num_sensors: int
    input_len: int
    horizon: int
    steps_per_day: int
    in_channels: int = IN_CHANNELS
    graph: SensorGraph | None = field(default=None, compare=False)

    def require_graph(self) -> SensorGraph:
        if self.graph is None or self.graph.num_edges == 0:
            return SensorGraph.from_dense(np.eye(self.num_sensors, dtype=np.float32))
        return self.graph


def to_torch_sparse(matrix: sparse.spmatrix) -> torch.Tensor:
    """A SciPy matrix as a torch sparse COO tensor (float32, coalesced)."""
    coo = sparse.coo_matrix(matrix)
    index = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    values = torch.from_numpy(coo.data.astype(np.float32))
    return torch.sparse_coo_tensor(index, values, coo.shape, check_invariants=True).coalesce()


def symmetric_with_self_loops(graph: SensorGraph) -> sparse.csr_matrix:
    """``A + Aᵀ`` (max-merged) with unit self loops: an undirected view of the graph."""
    matrix = graph.to_scipy().tocsr()
    matrix = matrix.maximum(matrix.T).tolil()
    matrix.setdiag(1.0)
    return matrix.tocsr()


def normalised_adjacency(graph: SensorGraph) -> torch.Tensor:
    """``D^-1/2 (A + I) D^-1/2`` of the symmetric graph (GCN's renormalisation), sparse."""
    matrix = symmetric_with_self_loops(graph)
    degree = np.asarray(matrix.sum(axis=1)).ravel()
    scale = sparse.diags(1.0 / np.sqrt(np.maximum(degree, 1e-12)))
    return to_torch_sparse(scale @ matrix @ scale)


def random_walk_matrices(graph: SensorGraph) -> list[torch.Tensor]:
    """Forward and backward transition matrices ``D_o⁻¹A`` and ``D_i⁻¹Aᵀ`` (diffusion), sparse."""
    matrix = graph.to_scipy().tocsr()
    result = []
    for direction in (matrix, matrix.T.tocsr()):
        degree = np.asarray(direction.sum(axis=1)).ravel()
        scale = np.divide(
            1.0, degree, out=np.zeros_like(degree, dtype=np.float64), where=degree > 0
        )
        result.append(to_torch_sparse(sparse.diags(scale) @ direction))
    return result


def scaled_laplacian(graph: SensorGraph) -> torch.Tensor:
    """``2L/λmax - I`` with ``L = I - D^-1/2 A D^-1/2`` (Chebyshev filters), sparse; λmax ≈ 2."""
    matrix = symmetric_with_self_loops(graph).tolil()
    matrix.setdiag(0.0)
    matrix = matrix.tocsr()
    degree = np.asarray(matrix.sum(axis=1)).ravel()
    scale = sparse.diags(
        np.divide(1.0, np.sqrt(degree), out=np.zeros_like(degree), where=degree > 0)
    )
    # L = I - S; with λmax taken as 2, 2L/λmax - I = -S
    return to_torch_sparse(-(scale @ matrix @ scale))


def sparse_mix(operator: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Apply an ``[n n]`` sparse operator along the sensor axis of ``x: [b n f]``."""
    batch, nodes, features = x.shape
    flat = x.permute(1, 0, 2).reshape(nodes, batch * features)
    mixed = torch.sparse.mm(operator, flat)
    return mixed.reshape(nodes, batch, features).permute(1, 0, 2)


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
