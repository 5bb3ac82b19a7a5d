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
        ``[m n]`` sparse or dense operator (``m`` sensors out, ``n`` in).
    x
        Features with the sensor axis at ``dim``: ``[n …]`` for ``dim=0``, ``[b n f]`` for
        ``dim=1``. Sensors first needs no transpose.
    dim
        Which axis of ``x`` holds the ``n`` sensors.
    """
    moved = x.movedim(dim, 0)
    flat = moved.reshape(moved.shape[0], -1)
    mixed = torch.sparse.mm(operator, flat) if operator.is_sparse else operator @ flat
    return mixed.reshape(operator.shape[0], *moved.shape[1:]).movedim(0, dim)


def mix_sensor_rows(
    operator: torch.Tensor, x: torch.Tensor, rows: torch.Tensor, dim: int = 0
) -> torch.Tensor:
    """``(operator @ x)[rows]`` along the sensor axis ``dim``, reading only the sensors that
    these rows reach: its cost follows the rows and their neighbours, not the city.

    Parameters
    ----------
    operator
        ``[n n]`` coalesced sparse COO operator (as :func:`to_torch_sparse` makes it), whose
        entries are therefore sorted by row.
    x
        Features with the ``n`` sensors on axis ``dim``.
    rows
        ``[s]`` int64 indices of the sensors whose mixed features are wanted, in the order
        returned along ``dim``.
    dim
        Which axis of ``x`` holds the sensors.
    """
    row_index, column_index = operator.indices()
    starts = torch.searchsorted(row_index, rows)
    counts = torch.searchsorted(row_index, rows, right=True) - starts
    row_of_entry = torch.repeat_interleave(torch.arange(len(rows), device=rows.device), counts)
    first_of_row = torch.cumsum(counts, 0) - counts
    entries = starts[row_of_entry] + torch.arange(len(row_of_entry), device=rows.device)
    entries -= first_of_row[row_of_entry]
    reached, column = torch.unique(column_index[entries], return_inverse=True)
    block = torch.sparse_coo_tensor(
        torch.stack([row_of_entry, column]),
        operator.values()[entries],
        (len(rows), len(reached)),
        check_invariants=False,  # indices valid by construction
    )
    return mix_sensors(block, x.index_select(dim, reached), dim)
