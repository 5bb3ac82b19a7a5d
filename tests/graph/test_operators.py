import numpy as np
import pytest
import torch
from scipy import sparse

from urbanflow.graph.operators import mix_sensor_rows, mix_sensors, to_torch_sparse


@pytest.mark.parametrize("dim", [0, 1, 2])
def test_mixing_some_rows_equals_those_rows_of_mixing_all(dim):
    rng = np.random.default_rng(0)
    matrix = sparse.random(40, 40, density=0.08, random_state=1, dtype=np.float32).tolil()
    matrix[7] = 0  # a sensor without neighbours mixes to zero
    operator = to_torch_sparse(matrix)
    shape = [3, 4, 5]
    shape.insert(dim, 40)
    x = torch.from_numpy(rng.standard_normal(shape).astype(np.float32))
    rows = torch.tensor([30, 7, 2, 11])

    some = mix_sensor_rows(operator, x, rows, dim=dim)

    expected = mix_sensors(operator, x, dim=dim).index_select(dim, rows)
    assert some.shape == expected.shape
    torch.testing.assert_close(some, expected)
    assert some.select(dim, 1).abs().max() == 0
