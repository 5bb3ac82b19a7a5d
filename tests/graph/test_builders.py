import numpy as np
import pytest

from urbanflow.errors import DataError
from urbanflow.graph.builders import gaussian_kernel_graph, haversine_m, knn_graph, weighted_graph


def test_gaussian_kernel_weights_and_threshold():
    distances = np.array([0.0, 1000.0, 2000.0, 4000.0])
    sigma = float(distances.std())
    graph = gaussian_kernel_graph(5, np.array([0, 1, 2, 3]), np.array([1, 2, 3, 4]), distances)
    expected = np.exp(-((distances / sigma) ** 2))
    kept = expected >= 0.1
    assert graph.num_edges == kept.sum()
    np.testing.assert_allclose(graph.weights, expected[kept], rtol=1e-6)
    assert 3 not in graph.sources.tolist()  # 4 km is beyond the threshold here


def test_gaussian_kernel_with_given_sigma():
    graph = gaussian_kernel_graph(2, np.array([0]), np.array([1]), np.array([500.0]), sigma=1000.0)
    assert graph.weights[0] == pytest.approx(np.exp(-0.25))


def test_negative_distance_refused():
    with pytest.raises(DataError, match="distances"):
        gaussian_kernel_graph(2, np.array([0]), np.array([1]), np.array([-1.0]))


def test_weighted_graph_drops_zero_weights():
    graph = weighted_graph(3, np.array([0, 1]), np.array([1, 2]), np.array([0.5, 0.0]))
    assert graph.num_edges == 1


def test_haversine_one_degree_of_latitude():
    assert haversine_m(0.0, 0.0, 1.0, 0.0) == pytest.approx(111_195, rel=1e-3)


def test_knn_links_nearest_sensors_both_ways():
    # four sensors on a line of longitude, 1 km apart, and one far away
    lat = np.array([34.0, 34.009, 34.018, 34.027, 35.0])
    lon = np.full(5, -118.0)
    graph = knn_graph(lat, lon, k=1)
    dense = graph.to_dense()
    assert dense[0, 1] > 0 and dense[1, 0] > 0  # symmetric
    assert dense[4, 3] > 0  # the far sensor still gets its nearest neighbour
    assert (dense > 0).sum(axis=1).min() >= 1
    np.testing.assert_array_equal(dense > 0, (dense > 0).T)
