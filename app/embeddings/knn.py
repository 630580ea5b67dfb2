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


def among(unit: np.ndarray, queries: np.ndarray, k: int, pools: list[np.ndarray], *,
          progress: Callable[[float], None] | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """For a few query rows, their k nearest within each pool at once, exactly: [(rows int32 (q, k), distances
    float16 (q, k))], one per pool (a bool mask over the rows), each query itself excluded.

    One pass over the rows in column blocks, every query against a block at a time: a million rows are read
    once and never copied (exact() with `candidates` copies the pool's rows, once per pool), so m new images
    cost one m x n product for all pools (app.embeddings.extend). Once each query has k of each pool, only a
    block's columns nearer than its k-th best so far are looked at: one comparison and a handful of columns,
    not a partition of every block.
    """
    queries = np.asarray(queries, dtype=np.int64)
    q = len(queries)
    best = [(np.full((q, k), -1, dtype=np.int64), np.full((q, k), np.inf, dtype=np.float32)) for _ in pools]
    if q == 0 or k == 0:
        return [(r.astype(np.int32), d.astype(np.float16)) for r, d in best]
    query = np.ascontiguousarray(unit[queries], dtype=np.float32)
    n = len(unit)
    step = int(max(1024, BLOCK_BYTES // (4 * q)))
    for start in range(0, n, step):
        stop = min(n, start + step)
        sim = query @ np.asarray(unit[start:stop], dtype=np.float32).T  # cosine distance = 1 - sim
        own = (queries >= start) & (queries < stop)
        sim[np.flatnonzero(own), queries[own] - start] = -np.inf
        kth = np.stack([dist[:, -1] for _, dist in best], axis=1)  # (q, pools)
        if np.isfinite(kth).all():
            floor = 1.0 - kth.max(axis=1)
            asked = np.flatnonzero(sim.max(axis=1) > floor)  # the queries this block can improve: few, late on
            qi, cj = np.nonzero(sim[asked] > floor[asked][:, None])
            qi = asked[qi]
            d = 1.0 - sim[qi, cj]
            for p, pool in enumerate(pools):
                pick = pool[start + cj] & (d < kth[qi, p])
                best[p] = _merge(best[p], qi[pick], start + cj[pick], d[pick], k)
        else:  # the first blocks: every column is nearer than nothing yet, so each query's k best of the block
            for p, pool in enumerate(pools):
                masked = sim if pool[start:stop].all() else np.where(pool[start:stop][None, :], sim, -np.inf)
                width = min(k, stop - start)
                part = np.argpartition(-masked, width - 1, axis=1)[:, :width]
                qi, cj = np.repeat(np.arange(q), width), part.ravel()
                ok = np.isfinite(masked[qi, cj])
                qi, cj = qi[ok], cj[ok]
                best[p] = _merge(best[p], qi, start + cj, 1.0 - masked[qi, cj], k)
        if progress is not None:
            progress(stop / n)
    out = []
    for rows, dist in best:
        finite = np.isfinite(dist)
        out.append((np.where(finite, rows, -1).astype(np.int32),
                    np.where(finite, np.clip(dist, 0.0, 2.0), np.inf).astype(np.float16)))
    return out


def _merge(best: tuple[np.ndarray, np.ndarray], qi: np.ndarray, rows: np.ndarray, dist: np.ndarray, k: int):
    """The running k best (rows, distances) per query with candidates (query qi, row, distance) merged in."""
    old_rows, old_dist = best
    q = len(old_rows)
    if not len(qi):
        return best
    all_q = np.concatenate([np.repeat(np.arange(q), k), qi])
    all_r = np.concatenate([old_rows.ravel(), rows])
    all_d = np.concatenate([old_dist.ravel(), np.asarray(dist, dtype=np.float32)])
    key = np.where(np.isfinite(all_d), all_r, np.iinfo(np.int64).max)  # ties to the lower row; empties last
    order = np.lexsort((key, all_d, all_q))
    all_q, all_r, all_d = all_q[order], all_r[order], all_d[order]
    rank = np.arange(len(all_q)) - np.searchsorted(all_q, np.arange(q))[all_q]
    keep = rank < k  # every query has its k running entries, so exactly k kept each
    return all_r[keep].reshape(q, k), all_d[keep].reshape(q, k)
