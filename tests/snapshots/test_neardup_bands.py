"""The multi-index finds every pair within the distance, whichever band layout it picks (issue 16)."""

from __future__ import annotations

import numpy as np
import pytest

from app.snapshots import neardup


def _hashes(n: int, seed: int) -> np.ndarray:
    """Random hashes, half of them in pairs 1-6 bits apart, plus a run of exact copies."""
    rng = np.random.default_rng(seed)
    h = rng.integers(0, 2**63 - 1, size=n, dtype=np.int64).view(np.uint64)
    for i in range(0, n // 2, 2):
        flip = rng.choice(64, size=int(rng.integers(1, 7)), replace=False)
        h[i + 1] = h[i] ^ np.uint64(sum(1 << int(b) for b in flip))
    h[n // 2:n // 2 + 5] = h[n // 2]
    return h.view(np.int64)


def _brute(h: np.ndarray, d: int) -> set[tuple[int, int]]:
    u = h.view(np.uint64)
    return {(i, j) for i in range(len(u)) for j in range(i + 1, len(u)) if bin(int(u[i] ^ u[j])).count("1") <= d}


def _components(h: np.ndarray, d: int) -> set[frozenset]:
    groups = neardup.groups(h, max_distance=d)
    return {frozenset(np.flatnonzero(groups == g).tolist()) for g in np.unique(groups)}


@pytest.mark.parametrize("m", [3, 4, 5])
@pytest.mark.parametrize("d", [1, 3, 4, 6])
def test_every_layout_finds_every_close_distinct_pair(monkeypatch, m, d):
    distinct = np.unique(_hashes(600, seed=m * 10 + d).view(np.uint64))
    monkeypatch.setattr(neardup, "_bands", lambda values, max_distance: (neardup._split(m), max_distance // m))
    a, b = neardup._close_pairs(distinct, d)
    assert set(zip(a.tolist(), b.tolist())) == _brute(distinct.view(np.int64), d)


def test_groups_equal_the_brute_force_components_with_small_pieces(monkeypatch):
    h = _hashes(500, seed=1)
    monkeypatch.setattr(neardup, "PAIRS", 7)  # candidates checked a few at a time: pieces must not lose any
    monkeypatch.setattr(neardup, "CHUNK", 33)
    pairs = _brute(h, 4)
    labels = np.arange(len(h))
    for _ in range(len(h)):
        for i, j in pairs:
            labels[i] = labels[j] = min(labels[i], labels[j])
    expected = {frozenset(np.flatnonzero(labels == g).tolist()) for g in np.unique(labels)}
    assert _components(h, 4) == expected


def test_large_uniform_hashes_choose_fewer_wider_bands():
    rng = np.random.default_rng(0)
    small = rng.integers(0, 2**63 - 1, size=5000, dtype=np.int64).view(np.uint64)
    large = rng.integers(0, 2**63 - 1, size=400_000, dtype=np.int64).view(np.uint64)
    assert neardup._bands(small, 4) == (neardup._split(5), 0)  # exact lookups in 5 narrow bands
    assert neardup._bands(large, 4) == (neardup._split(3), 1)  # 5 bands would hold ~6 hashes a bucket
