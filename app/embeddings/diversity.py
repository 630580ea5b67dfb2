"""The "diverse" labelling order: unlabelled images that cover the space, away from what is labelled already.

k-center greedy: each step takes the candidate farthest (cosine) from
everything labelled or taken so far, so the first hundred images span the
clusters instead of repeating the one a folder import put first. The distances
start from the labelled images, so the order moves away from what is known.

Mixed with uncertainty: a candidate's distance is weighted by
(1 - MIX) + MIX * (1 - margin), margin being the top-1 minus top-2
probability of its latest prediction (a candidate without one weighs 1): among
equally far images the one the model is least sure of goes first. bench/diverse.py
(a simulated session on a real 3,000-image space, 50 labelled to start, 5 seeds;
accuracy of a 5-NN classifier on the rest after B picks are labelled):

  order                 acc@100   acc@300   classes in the first 100 (of 10)
  import (shuffled)      0.855     0.848     10.0
  random                 0.840     0.853     10.0
  most uncertain         0.833     0.861     10.0
  k-center, MIX 0        0.849     0.873      9.0
  k-center, MIX 0.5      0.853     0.882      9.2   (chosen)
  k-center, MIX 1        0.856     0.870      9.2

The differences at 100 picks are within the seeds' spread; at 300 the mix
is best. On an import made class by class (a folder import) import order
covers 3 of 5 classes in its first 100 where this order covers all 5
(tests/embeddings/test_analyse.py).

Bounded work: at most RANK_MAX candidates are ranked (a seeded random sample
when there are more, so every part of the import history can be drawn), the
first GREEDY of them by true greedy steps (one matrix-vector product each), the
rest of the ranked ones by their final distance; unranked candidates follow in
import (id) order.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

RANK_MAX = 20_000
GREEDY = 2_000  # greedy steps: 2,000 x 20,000 x 256 multiply-adds, a few seconds on 2 cores
MIX = 0.5  # bench/diverse.py (docstring)
BLOCK_BYTES = 64 << 20


def weights(margins: np.ndarray | None, n: int, mix: float = MIX) -> np.ndarray:
    """float32 (n,) weights in [1 - mix, 1]: less sure (smaller margin) weighs more; NaN margin weighs 1."""
    if margins is None:
        return np.ones(n, dtype=np.float32)
    m = np.asarray(margins, dtype=np.float32)
    u = np.where(np.isfinite(m), 1.0 - np.clip(m, 0.0, 1.0), 1.0)
    return ((1.0 - mix) + mix * u).astype(np.float32)


def min_distance(queries: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """float32 (len(queries),): each query row's cosine distance to its nearest seed row (2.0 with no seeds)."""
    out = np.full(len(queries), 2.0, dtype=np.float32)
    if len(seeds) == 0 or len(queries) == 0:
        return out
    step = int(max(16, min(8192, BLOCK_BYTES // (4 * len(queries)))))
    for start in range(0, len(seeds), step):
        block = np.asarray(seeds[start:start + step], dtype=np.float32)
        out = np.minimum(out, 1.0 - (block @ np.asarray(queries, dtype=np.float32).T).max(axis=0))
    return np.clip(out, 0.0, 2.0)


def order(candidates: np.ndarray, seeds: np.ndarray, weight: np.ndarray | None = None, *,
          greedy: int = GREEDY, cancelled: Callable[[], bool] | None = None,
          progress: Callable[[float], None] | None = None) -> np.ndarray:
    """Positions into `candidates` (unit rows), in diverse order: greedy for the first `greedy`, then by the
    weighted distance left. `seeds`: unit rows already covered (the labelled images)."""
    m = len(candidates)
    if m == 0:
        return np.zeros(0, dtype=np.int64)
    cand = np.ascontiguousarray(candidates, dtype=np.float32)
    w = np.ones(m, dtype=np.float32) if weight is None else np.asarray(weight, dtype=np.float32)
    dist = min_distance(cand, seeds)
    taken = np.zeros(m, dtype=bool)
    picks: list[int] = []
    for step in range(min(greedy, m)):
        score = np.where(taken, -np.inf, dist * w)
        p = int(np.argmax(score))  # ties (e.g. no seeds: every distance 2.0) go to the earliest import
        picks.append(p)
        taken[p] = True
        dist = np.minimum(dist, 1.0 - cand @ cand[p])
        if step % 200 == 199:
            if cancelled is not None and cancelled():
                break
            if progress is not None:
                progress(step / min(greedy, m))
    rest = np.flatnonzero(~taken)
    rest = rest[np.lexsort((rest, -(dist[rest] * w[rest])))]
    return np.concatenate([np.asarray(picks, dtype=np.int64), rest.astype(np.int64)])


def diverse_ids(ids: np.ndarray, unit: np.ndarray, candidate_rows: np.ndarray, seed_rows: np.ndarray,
                margins: np.ndarray | None = None, *, rank_max: int = RANK_MAX, mix: float = MIX,
                seed: int = 0, cancelled: Callable[[], bool] | None = None,
                progress: Callable[[float], None] | None = None) -> np.ndarray:
    """Image ids (int64) of the candidate rows in diverse order; `margins` (len(candidate_rows),, NaN = none).

    `candidate_rows` are rows of `unit` in import (id) order; beyond `rank_max` a seeded sample is ranked and
    the others follow in import order.
    """
    candidate_rows = np.asarray(candidate_rows, dtype=np.int64)
    m = len(candidate_rows)
    if m > rank_max:
        ranked = np.sort(np.random.default_rng(seed).choice(m, rank_max, replace=False))
    else:
        ranked = np.arange(m)
    w = weights(None if margins is None else np.asarray(margins)[ranked], len(ranked), mix)
    first = order(unit[candidate_rows[ranked]], unit[np.asarray(seed_rows, dtype=np.int64)], w,
                  cancelled=cancelled, progress=progress)
    rest = np.setdiff1d(np.arange(m), ranked, assume_unique=True)
    positions = np.concatenate([ranked[first], rest])
    return np.asarray(ids, dtype=np.int64)[candidate_rows[positions]]
