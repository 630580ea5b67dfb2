"""The analyse job's stages, timed at 100,000 images (or --n) on this machine's cores.

Vectors: bench/similar.py's clustered synthetic embeddings (100 Gaussian
clusters in a 24-d latent space mapped into 256-d; unit rows), half of them
"labelled" (their cluster modulo 10 is the class), 5 folds for the
out-of-sample neighbour share (the same vectors stand in for the fold models'),
the other half unlabelled with a random margin each. The stages run the
app's own functions, as app.embeddings.analyse.run_job calls them; one line
each: wall seconds, CPU seconds (all threads; on a machine others share,
wall time is what the others left over) and the peak memory so far. knn is
the graph as the job makes it (exact up to knn.EXACT_MAX rows, HNSW above),
knn-exact the blocked exact graph for comparison; outlier-knn each image's
K nearest among the labelled half.

Measured at 100,000 x 256 on this machine's two cores, shared with other work
(load 10-13; CPU seconds are the steadier figure):

  stage         wall s   CPU s   peak RSS MB
  knn             76.5    49.0      494   (HNSW; --exact: 641 s wall, 193 CPU s)
  outlier-knn     38.4    23.7      494   (HNSW over the 50,000 labelled)
  outliers         0.1     0.0
  evidence        15.8     9.0      541   (5 folds of 10,000, exact)
  diverse         41.0    21.9      541   (20,000 ranked, 2,000 greedy steps)
  map            189.1    95.6      723   (PaCMAP, app.embeddings.projection)
  index            0.0     0.0            (100,000 rows: searched exactly, no index)
  total          361     199

Run: .venv/bin/python bench/analyse.py [--n 100000] [--dim 256] [--exact]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.embeddings import ann, diversity, knn, neighbours, outliers, projection  # noqa: E402
from bench.similar import clustered  # noqa: E402


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(label: str, n: int, fn):
    t, cpu = time.perf_counter(), time.process_time()
    out = fn()
    print(f"analyse stage={label:12s} n={n} seconds={time.perf_counter() - t:.1f} "
          f"cpu_seconds={time.process_time() - cpu:.1f} peak_rss_mb={peak_mb():.0f}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--exact", action="store_true", help="also time the exact graph (minutes at 100,000)")
    args = parser.parse_args()
    n = args.n
    rng = np.random.default_rng(0)
    unit = clustered(n, args.dim)
    ids = np.arange(1, n + 1, dtype=np.int64)
    # Classes: the nearest of 10 random unit rows (a stand-in for labels that follow the clusters).
    anchors = unit[rng.choice(n, 10, replace=False)]
    cluster = np.argmax(unit @ anchors.T, axis=1)
    labelled = rng.random(n) < 0.5
    labels = np.where(labelled, cluster, -1)
    folds = rng.integers(0, 5, n)
    margins = rng.random(n).astype(np.float32)

    if args.exact:
        timed("knn-exact", n, lambda: knn.exact(unit, knn.K))
    timed("knn", n, lambda: knn.graph(unit, knn.K))
    reference = np.flatnonzero(labelled)
    _, ref_dist = timed("outlier-knn", n, lambda: knn.to_reference(unit, reference, knn.K))
    timed("outliers", n, lambda: outliers.robust_z(outliers.kth_distance(ref_dist), labels))
    lab_rows = np.flatnonzero(labelled)
    timed("evidence", n, lambda: neighbours.out_of_sample(ids[lab_rows], unit[lab_rows], labels[lab_rows],
                                                           folds[lab_rows]))
    candidates = np.flatnonzero(~labelled)
    timed("diverse", n, lambda: diversity.diverse_ids(ids, unit, candidates, lab_rows, margins[candidates]))
    timed("map", n, lambda: projection.project(unit, seed=0))
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        timed("index", n, lambda: ann.build_for_analysis(ids, unit, Path(folder)))


if __name__ == "__main__":
    main()
