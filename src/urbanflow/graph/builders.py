"""Graph builders: road distances (Gaussian kernel), given weights, coordinates (kNN).

The distance kernel is the one of the DCRNN paper (Li et al., ICLR 2018):
``w_ij = exp(-(d_ij / σ)²)`` where ``σ`` is the standard deviation of the finite distances
given, and weights below ``threshold`` (default 0.1) are dropped.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from urbanflow.errors import DataError
from urbanflow.graph.graph import SensorGraph

EARTH_RADIUS_M = 6_371_008.8
DEFAULT_KERNEL_THRESHOLD = 0.1
DEFAULT_NEIGHBOURS = 8


def gaussian_kernel_graph(
    num_sensors: int,
    sources: np.ndarray,
    targets: np.ndarray,
    distances_m: np.ndarray,
    sigma: float | None = None,
    threshold: float = DEFAULT_KERNEL_THRESHOLD,
) -> SensorGraph:
    """Thresholded Gaussian kernel of road distances: ``exp(-(d/σ)²)``, kept if ≥ threshold.

    ``σ`` defaults to the standard deviation of the distances given (DCRNN's choice).
    """
    distances = np.asarray(distances_m, dtype=np.float64)
    if distances.size and (np.any(~np.isfinite(distances)) or np.any(distances < 0)):
        raise DataError("edge distances must be finite and ≥ 0; fix the distance_m column")
    if sigma is None:
        sigma = float(distances.std()) if distances.size else 1.0
    if sigma <= 0:
        sigma = 1.0  # all distances equal: every edge gets weight 1 (d = σ·0) or exp(-d²)
    weights = np.exp(-np.square(distances / sigma))
    keep = weights >= threshold
    return SensorGraph.from_edges(
        num_sensors, np.asarray(sources)[keep], np.asarray(targets)[keep], weights[keep]
    )


def weighted_graph(
    num_sensors: int, sources: np.ndarray, targets: np.ndarray, weights: np.ndarray
) -> SensorGraph:
    """Edges with the weights given; zero weights are dropped."""
    weights = np.asarray(weights, dtype=np.float64)
    if np.any(~np.isfinite(weights)) or np.any(weights < 0):
        raise DataError("edge weights must be finite and ≥ 0; fix the weight column")
    keep = weights > 0
    return SensorGraph.from_edges(
        num_sensors, np.asarray(sources)[keep], np.asarray(targets)[keep], weights[keep]
    )


def _unit_vectors(latitude: np.ndarray, longitude: np.ndarray) -> np.ndarray:
    lat = np.radians(np.asarray(latitude, dtype=np.float64))
    lon = np.radians(np.asarray(longitude, dtype=np.float64))
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=1)


def haversine_m(
    lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray
) -> np.ndarray:
    """Great-circle distance in metres between points given in degrees."""
    phi1, phi2 = np.radians(lat1), np.radians(lat2)
    dphi = phi2 - phi1
    dlmb = np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dphi / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def nearest_neighbours(
    latitude: np.ndarray, longitude: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """``([n k'], [n k'])``: each point's ``k' = min(k, n - 1)`` nearest other points (indices,
    nearest first) and their haversine distances in metres.

    O(n log n) via a k-d tree on unit vectors (chord order equals great-circle order).

    Parameters
    ----------
    latitude, longitude
        ``[n]`` degrees, all finite.
    k
        Neighbours wanted per point, ≥ 1.
    """
    lat = np.asarray(latitude, dtype=np.float64)
    lon = np.asarray(longitude, dtype=np.float64)
    k = min(k, lat.size - 1)
    if k < 1:
        empty = np.zeros((lat.size, 0))
        return empty.astype(np.int64), empty
    points = _unit_vectors(lat, lon)
    _, found = cKDTree(points).query(points, k=k + 1)
    # a point is its own nearest unless another sits on it: drop itself wherever it landed
    own = found == np.arange(lat.size)[:, None]
    keep = np.where(own.any(axis=1)[:, None], ~own, np.arange(k + 1)[None, :] < k)
    neighbours = found[keep].reshape(lat.size, k)
    sources = np.repeat(np.arange(lat.size), k)
    distances = haversine_m(
        lat[sources], lon[sources], lat[neighbours.ravel()], lon[neighbours.ravel()]
    )
    return neighbours.astype(np.int64), distances.reshape(lat.size, k)


def knn_graph(
    latitude: np.ndarray,
    longitude: np.ndarray,
    k: int = DEFAULT_NEIGHBOURS,
    threshold: float = 0.0,
) -> SensorGraph:
    """Each sensor linked to its ``k`` nearest others by haversine distance, both directions.

    Weights use the same Gaussian kernel as road distances (σ = std of the kNN distances),
    so graphs from coordinates and from distances are on one scale; no edge is dropped
    unless ``threshold`` > 0. O(n log n) via a k-d tree
    on unit vectors (chord order equals great-circle order).
    """
    num_sensors = len(latitude)
    if num_sensors < 2:
        return SensorGraph.empty(num_sensors)
    neighbours, found = nearest_neighbours(latitude, longitude, k)
    sources = np.repeat(np.arange(num_sensors), neighbours.shape[1])
    targets = neighbours.ravel()
    distances = found.ravel()
    both_src = np.concatenate([sources, targets])
    both_dst = np.concatenate([targets, sources])
    both_d = np.concatenate([distances, distances])
    return gaussian_kernel_graph(num_sensors, both_src, both_dst, both_d, threshold=threshold)
