"""The map's projection: planted clusters stay apart in 2-D, the same rows give the same map, any n works."""

from __future__ import annotations

import numpy as np
import pytest

from app.embeddings import projection


def _clusters(n: int, k: int = 6, dim: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    rows = rng.normal(size=(k, dim))[labels] * 3 + rng.normal(size=(n, dim))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32), labels


def _same10(xy: np.ndarray, labels: np.ndarray) -> float:
    d = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nb = np.argsort(d, axis=1)[:, :10]
    return float((labels[nb] == labels[:, None]).mean())


@pytest.mark.parametrize("n", [0, 1, 2, 3, projection.SMALL - 1])
def test_any_number_of_rows_gives_finite_points_in_the_box(n):
    rows, _ = _clusters(max(n, 1))
    xy = projection.project(rows[:n], seed=0)
    assert xy.shape == (n, 2) and xy.dtype == np.float32
    assert np.isfinite(xy).all() and (np.abs(xy) <= 1).all()
    if n >= 2:
        assert np.isclose(np.abs(xy).max(), 1)  # the longer side spans the box


def test_identical_rows_do_not_divide_by_zero():
    xy = projection.project(np.ones((5, 8), dtype=np.float32) / np.sqrt(8))
    assert (xy == 0).all()


@pytest.mark.slow  # ~25 s on two busy cores (imports and two fits); the machine's first PaCMAP call also compiles
def test_planted_clusters_stay_apart_and_the_map_is_the_same_every_time():
    rows, labels = _clusters(600)
    xy = projection.project(rows, seed=0)
    assert xy.shape == (600, 2) and np.isfinite(xy).all() and (np.abs(xy) <= 1).all()
    assert _same10(xy, labels) > 0.95
    assert np.array_equal(xy, projection.project(rows, seed=0))  # points do not jump between analyses
    # The longer side spans [-1, 1] and the aspect is kept: one factor for both axes.
    assert np.isclose(max(np.ptp(xy[:, 0]), np.ptp(xy[:, 1])), 2)
