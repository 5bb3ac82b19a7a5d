"""Graph operators in torch: sparse ``[n n]`` tensors and mixing along the sensor axis.

Imports torch, so ``urbanflow.graph`` does not import this module; networks do. The matrices
themselves are defined once, in SciPy, in ``graph/matrices.py``.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import sparse


def to_torch_sparse(matrix: sparse.spmatrix) -> torch.Tensor:
    """A SciPy matrix as a torch sparse COO tensor (float32, coalesced).

    Parameters
    ----------
    matrix
        Any SciPy sparse matrix.
    """
    coo = sparse.coo_matrix(matrix)
    index = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
    values = torch.from_numpy(coo.data.astype(np.float32))
    return torch.sparse_coo_tensor(index, values, coo.shape, check_invariants=True).coalesce()


def mix_sensors(operator: torch.Tensor, x: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """``operator @ x`` along the sensor axis ``dim`` of ``x`` (one matrix product).

    Parameters
    ----------
    operator
        ``[n n]`` sparse or dense operator.
    x
        Features with the sensor axis at ``dim``: ``[n …]`` for ``dim=0``, ``[b n f]`` for
        ``dim=1``. Sensors first needs no transpose.
    dim
        Which axis of ``x`` holds the ``n`` sensors.
    """
    moved = x.movedim(dim, 0)
    flat = moved.reshape(moved.shape[0], -1)
    mixed = torch.sparse.mm(operator, flat) if operator.is_sparse else operator @ flat
    return mixed.reshape(moved.shape).movedim(0, dim)
