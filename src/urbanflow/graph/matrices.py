"""Normalised matrices of a sensor graph, as SciPy sparse matrices (no torch).

Each normalisation a model uses has one definition here; ``graph/operators.py`` turns them
into torch operators for the networks. Every matrix is ``[n n]`` with row = source sensor.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from urbanflow.graph.graph import SensorGraph


def symmetric_with_self_loops(graph: SensorGraph) -> sparse.csr_matrix:
    """``A + Aᵀ`` (max-merged) with unit self loops: an undirected view of the graph.

    Parameters
    ----------
    graph
        The sensor graph ``A``.
    """
    matrix = graph.to_scipy().tocsr()
    matrix = matrix.maximum(matrix.T).tolil()
    matrix.setdiag(1.0)
    return matrix.tocsr()


def row_normalised(matrix: sparse.spmatrix) -> sparse.csr_matrix:
    """``D⁻¹ M`` in the matrix's own precision: each row divided by its sum; zero rows stay 0.

    Parameters
    ----------
    matrix
        ``[n n]`` non-negative weights.
    """
    matrix = sparse.csr_matrix(matrix)
    degree = np.asarray(matrix.sum(axis=1)).ravel()
    scale = np.divide(1.0, degree, out=np.zeros_like(degree), where=degree > 0)
    return (sparse.diags(scale) @ matrix).tocsr()


def neighbour_average(graph: SensorGraph) -> sparse.csr_matrix:
    """``D⁻¹ A`` without self loops: the weighted mean over each sensor's out-neighbours.

    Parameters
    ----------
    graph
        The sensor graph ``A``; isolated sensors get a zero row.
    """
    matrix = graph.to_scipy().tolil()
    matrix.setdiag(0)
    matrix = matrix.tocsr()
    matrix.eliminate_zeros()
    return row_normalised(matrix)


def transition_matrices(graph: SensorGraph) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
    """Forward and backward random-walk matrices ``D_o⁻¹A`` and ``D_i⁻¹Aᵀ`` (diffusion).

    Parameters
    ----------
    graph
        The sensor graph ``A``; self loops are kept.
    """
    matrix = graph.to_scipy().tocsr()
    return row_normalised(matrix), row_normalised(matrix.T.tocsr())


def gcn_normalised(graph: SensorGraph) -> sparse.csr_matrix:
    """``D^-1/2 (A + I) D^-1/2`` of the symmetric graph (GCN's renormalisation).

    Parameters
    ----------
    graph
        The sensor graph ``A``.
    """
    matrix = symmetric_with_self_loops(graph)
    degree = np.asarray(matrix.sum(axis=1)).ravel()
    scale = sparse.diags(1.0 / np.sqrt(np.maximum(degree, 1e-12)))
    return (scale @ matrix @ scale).tocsr()


def scaled_laplacian(graph: SensorGraph) -> sparse.csr_matrix:
    """``2L/λmax - I`` with ``L = I - D^-1/2 A D^-1/2`` (Chebyshev filters); λmax taken as 2.

    Parameters
    ----------
    graph
        The sensor graph ``A``; it is symmetrised and self loops are dropped.
    """
    matrix = symmetric_with_self_loops(graph).tolil()
    matrix.setdiag(0.0)
    matrix = matrix.tocsr()
    degree = np.asarray(matrix.sum(axis=1)).ravel()
    scale = sparse.diags(
        np.divide(1.0, np.sqrt(degree), out=np.zeros_like(degree), where=degree > 0)
    )
    # L = I - S; with λmax taken as 2, 2L/λmax - I = -S
    return (-(scale @ matrix @ scale)).tocsr()
