"""The kNN graph of an embedding space: every row's K nearest other rows by cosine distance.

Exact up to EXACT_MAX rows: one block of query rows against every row at a
time, so memory stays at about BLOCK_BYTES whatever n is (a 100,000 x 100,000
distance matrix would be 40 GB). Above EXACT_MAX the graph comes from an HNSW
index (app.embeddings.ann), whose recall is measured there (and checked in
tests/embeddings/test_analyse_arrays.py against exact).

K = 10: the outlier score, the neighbour share and the review evidence all
read these K. Median rank of planted strays by outlier score (bench/outliers.py;
distance to the K-th nearest labelled image; 0 = strangest, of 3,033 in A and
2,110 in B):

  K     A noise   A photos   B letters   B noise
  5      125        185          79        267
  10      47        149          89        296
  20      34        141          90        227

No K wins both conditions; 5 lets a group of look-alike strays hide among
itself (A), 20 halves what a small class can offer. 10 neighbours out of one
fold is what a class of 20 labelled images in 2 folds can give the neighbour
share, and what the similar-images strip shows (same-class share 0.79 at
k=10 on a 400-image train job).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

K = 10
# Above this many rows the graph comes from an HNSW index (app.embeddings.ann: build, search). bench/analyse.py
# at 100,000 rows, dim 256: exact 193 CPU s (641 s wall on two cores shared with other work), HNSW 48 CPU s
# (112 s). Exact grows with n^2 (20,000 rows: ~8 CPU s), HNSW with about n log n.
EXACT_MAX = 20_000
BLOCK_BYTES = 64 << 20  # one block's distance matrix (float32): ~64 MB, whatever n is


def _block_rows(n: int) -> int:
    return int(max(16, min(4096, BLOCK_BYTES // (4 * max(n, 1)))))


def exact(unit: np.ndarray, k: int, *, candidates: np.ndarray | None = None, queries: np.ndarray | None = None,
          progress: Callable[[float], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rows int32 (q, k), cosine distances float16 (q, k)) of each query row's k nearest, itself excluded.

    `candidates`: row indices the neighbours may come from (default: every row); a row that is itself a
    candidate never finds itself. `queries`: the rows to answer for (default: every row, q = n). k is cut to
    what there is; missing places hold row -1 and distance inf.
    """
    asked = np.arange(len(unit)) if queries is None else np.asarray(queries, dtype=np.int64)
    n = len(asked)
    pool = np.arange(len(unit)) if candidates is None else np.asarray(candidates, dtype=np.int64)
    k = int(max(0, min(k, len(pool))))
    rows = np.full((n, k), -1, dtype=np.int32)
    dist = np.full((n, k), np.inf, dtype=np.float16)
    if n == 0 or k == 0:
        return rows, dist
    # A query that is a candidate: its own column is blanked, so at most len(pool) - 1 real neighbours.
    position = np.full(len(unit), -1, dtype=np.int64)
    position[pool] = np.arange(len(pool))
    targets = np.ascontiguousarray(unit[pool], dtype=np.float32).T
    step = _block_rows(len(pool))
    for start in range(0, n, step):
        stop = min(n, start + step)
        block = asked[start:stop]
        d = 1.0 - np.asarray(unit[block] if queries is not None else unit[start:stop], dtype=np.float32) @ targets
        own = position[block]
        hit = np.flatnonzero(own >= 0)
        d[hit, own[hit]] = np.inf
        part = np.argpartition(d, k - 1, axis=1)[:, :k] if k < d.shape[1] else np.tile(np.arange(k), (len(d), 1))
        pd = np.take_along_axis(d, part, axis=1)
        order = np.lexsort((part, pd), axis=1)  # nearest first; ties to the lower row (as similar.nearest)
        part, pd = np.take_along_axis(part, order, axis=1), np.take_along_axis(pd, order, axis=1)
        found = np.where(np.isfinite(pd), pool[part], -1)
        rows[start:stop] = found
        dist[start:stop] = np.where(np.isfinite(pd), np.clip(pd, 0.0, 2.0), np.inf)
        if progress is not None:
            progress(stop / n)
    return rows, dist


def to_reference(unit: np.ndarray, reference: np.ndarray, k: int = K, *,
                 progress: Callable[[float], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rows int32 (n, k), distances float16 (n, k)): each row's k nearest among the `reference` rows (itself
    excluded), exact up to EXACT_MAX rows, through an HNSW index over the reference rows above."""
    reference = np.asarray(reference, dtype=np.int64)
    if len(unit) <= EXACT_MAX or len(reference) <= k + 1:
        return exact(unit, k, candidates=reference, progress=progress)
    return _hnsw(unit, reference, k, progress)


def _hnsw(unit, reference, k, progress) -> tuple[np.ndarray, np.ndarray]:
    from app.embeddings import ann

    k = min(k, len(reference) - 1)
    index = ann.build(unit[reference], None if progress is None else lambda f: progress(0.7 * f))
    rows = np.full((len(unit), k), -1, dtype=np.int32)
    dist = np.full((len(unit), k), np.inf, dtype=np.float16)
    step = 16_384  # query rows at a time: progress, cancel and memory
    for start in range(0, len(unit), step):
        stop = min(len(unit), start + step)
        found, d = ann.search(index, unit[start:stop], k + 1)
        found = np.where(found >= 0, reference[np.maximum(found, 0)], -1)
        own = found == np.arange(start, stop)[:, None]  # a reference row finds itself: dropped
        drop = np.where(own.any(axis=1)[:, None], own, np.arange(k + 1)[None, :] == k)
        kept, kept_d = found[~drop].reshape(-1, k), d[~drop].reshape(-1, k)
        rows[start:stop] = kept
        dist[start:stop] = np.where(kept >= 0, np.clip(kept_d, 0.0, 2.0), np.inf)
        if progress is not None:
            progress(0.7 + 0.3 * stop / len(unit))
    return rows, dist


def graph(unit: np.ndarray, k: int = K, *,
          progress: Callable[[float], None] | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """(rows, distances, method) over every row of the space: exact up to EXACT_MAX rows, else through HNSW.

    Above ann.GRAPH_EXACT_MAX through ann.graph, whose index the same job then saves for similar-image
    search (ann.build_for_analysis reuses it instead of building it twice); below, no index is kept.
    """
    if len(unit) <= EXACT_MAX:
        rows, dist = exact(unit, k, progress=progress)
        return rows, dist, "exact"
    from app.embeddings import ann

    if len(unit) > ann.GRAPH_EXACT_MAX:
        rows, dist = ann.graph(unit, k, progress)
        return rows.astype(np.int32), dist.astype(np.float16), "hnsw"
    rows, dist = _hnsw(unit, np.arange(len(unit)), k, progress)
    return rows, dist, "hnsw"
