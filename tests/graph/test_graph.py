import numpy as np
import pytest

from urbanflow.errors import DataError
from urbanflow.graph.graph import SensorGraph
from urbanflow.graph.matrices import neighbour_average


def test_dense_round_trip_and_edge_index():
    dense = np.array([[1.0, 0.5, 0.0], [0.0, 0.0, 2.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    graph = SensorGraph.from_dense(dense)
    assert graph.num_edges == 3
    np.testing.assert_array_equal(graph.to_dense(), dense)
    np.testing.assert_array_equal(graph.to_scipy().toarray(), dense)
    assert graph.edge_index().tolist() == [[0, 0, 1], [0, 1, 2]]


def test_repeated_edges_keep_the_strongest():
    graph = SensorGraph.from_edges(
        2, np.array([0, 0, 1]), np.array([1, 1, 0]), np.array([0.2, 0.7, 0.1])
    )
    assert graph.num_edges == 2
    assert graph.to_dense()[0, 1] == pytest.approx(0.7)


def test_row_normalised_drops_self_loops():
    dense = np.array([[1.0, 1.0, 3.0], [0.0, 5.0, 0.0], [2.0, 0.0, 0.0]])
    matrix = neighbour_average(SensorGraph.from_dense(dense)).toarray()
    np.testing.assert_allclose(matrix, [[0, 0.25, 0.75], [0, 0, 0], [1, 0, 0]])


def test_invalid_edges_are_refused():
    with pytest.raises(DataError, match="outside"):
        SensorGraph(2, np.array([0]), np.array([2]), np.array([1.0]))
    with pytest.raises(DataError, match="NaN"):
        SensorGraph(2, np.array([0]), np.array([1]), np.array([np.nan]))
    with pytest.raises(DataError, match="square"):
        SensorGraph.from_dense(np.zeros((2, 3)))
