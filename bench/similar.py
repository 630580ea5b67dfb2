"""Similar-image search: exact numpy against approximate indexes (faiss HNSW, faiss IVF-Flat, hnswlib).

hnswlib is not one of the app's dependencies: `pip install hnswlib` for its lines (or --only without it).

One line per configuration: build time, query p95 (k=20, one image at a time
as GET /api/images/{id}/similar asks), recall@20 against exact search, and
memory (the index's serialised size, which is what it holds in RAM: vectors
plus links or lists).

Data ("clustered"): N vectors from 100 Gaussian clusters (centres N(0, I),
per-axis spreads uniform in 0.25..0.75) in a 24-d latent space, mapped into D
dimensions through one random basis, plus N(0, 0.05^2) noise in all D, then
L2-normalised. Chosen to look like real embeddings, a little harder: on
70,000 rows, 90 % of the variance lies in 19 principal axes (Fashion-MNIST's
small-CNN embeddings: 10), and the 20th neighbour sits at 0.11 of a random
pair's cosine distance (Fashion-MNIST: 0.018). "sheets", the hard case:
1,000 clusters (centres N(0, I)), each a random 16-d sheet of its own with
4x the centres' spread, plus N(0, 0.6^2) noise in all D: the clusters
overlap and neighbours are barely nearer than the rest (isotropic random
vectors would be the worst case for any index and unlike any network's output). "fmnist":
70,000 real Fashion-MNIST images (train + test) through a small CNN trained
for 2 epochs on 10,000 of them (bench/_fmnist_embed.py; 256-d penultimate layer).

Exact search goes through the app's own path (files.Writer -> files.load ->
similar.normalise -> similar.nearest); the indexes get the same unit rows.

Run: .venv/bin/python bench/similar.py [--sizes 100000,1000000] [--dims 256] [--data clustered|sheets|fmnist]
     [--only exact,faiss-hnsw,faiss-ivf,hnswlib] [--queries 200] [--graph]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.embeddings import files, similar  # noqa: E402

K = 20
TARGET_MS = 50.0
WRITE_ROWS = 65_536


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """float32 unit rows: 100 Gaussian clusters in a random 24-d subspace, plus isotropic noise (docstring)."""
    rng = np.random.default_rng(seed)
    latent, clusters = 24, 100
    basis = rng.standard_normal((latent, dim), dtype=np.float32) / np.sqrt(latent)
    centres = rng.standard_normal((clusters, latent), dtype=np.float32)
    scales = rng.uniform(0.25, 0.75, (clusters, latent)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, WRITE_ROWS):
        stop = min(n, start + WRITE_ROWS)
        label = rng.integers(0, clusters, stop - start)
        z = centres[label] + rng.standard_normal((stop - start, latent), dtype=np.float32) * scales[label]
        out[start:stop] = z @ basis + 0.05 * rng.standard_normal((stop - start, dim), dtype=np.float32)
    return similar.normalise(out)


def sheets(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """The hard case: 1,000 overlapping clusters, each a 16-d sheet of its own (docstring)."""
    rng = np.random.default_rng(seed)
    clusters, latent = 1000, 16
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    bases = [rng.standard_normal((latent, dim), dtype=np.float32) * (4.0 / np.sqrt(latent)) for _ in range(clusters)]
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, WRITE_ROWS):
        stop = min(n, start + WRITE_ROWS)
        label = rng.integers(0, clusters, stop - start)
        out[start:stop] = centres[label] + 0.6 * rng.standard_normal((stop - start, dim), dtype=np.float32)
        for c in np.unique(label):
            at = np.flatnonzero(label == c)
            out[start + at] += rng.standard_normal((len(at), latent), dtype=np.float32) @ bases[c]
    return similar.normalise(out)


def through_the_app(vectors: np.ndarray) -> np.ndarray:
    """The rows as the app holds them: written as float16 by the worker's writer, loaded and normalised."""
    n, dim = vectors.shape
    with tempfile.TemporaryDirectory() as tmp:
        writer = files.Writer(Path(tmp), np.arange(1, n + 1), dim)
        for start in range(0, n, WRITE_ROWS):
            stop = min(n, start + WRITE_ROWS)
            writer.write(np.arange(start + 1, stop + 1), vectors[start:stop])
        info = writer.finish()
        _, rows = files.load(Path(info["embeddings"]), Path(info["embedding_ids"]))
        return similar.normalise(rows)


def p95(times: list[float]) -> float:
    return float(np.percentile(times, 95))


def exact(vectors: np.ndarray, queries: np.ndarray) -> tuple[list[np.ndarray], list[float]]:
    truth, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        rows, _ = similar.nearest(vectors, vectors[q], K, exclude=int(q))
        times.append((time.perf_counter() - t0) * 1000)
        truth.append(rows)
    return truth, times


def recall(found: list[np.ndarray], truth: list[np.ndarray]) -> float:
    return float(np.mean([len(set(f.tolist()) & set(t.tolist())) / K for f, t in zip(found, truth)]))


def _size(write) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "index")
        write(path)
        return os.path.getsize(path)


def faiss_hnsw(vectors, queries, m: int, ef_construction: int, efs: list[int]):
    import faiss

    t0 = time.perf_counter()
    index = faiss.IndexHNSWFlat(vectors.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    index.add(vectors)
    build = time.perf_counter() - t0
    size = _size(lambda p: faiss.write_index(index, p))
    for ef in efs:
        index.hnsw.efSearch = ef
        yield f"faiss-hnsw M={m} efC={ef_construction} ef={ef}", build, size, _faiss_queries(index, vectors, queries)


def faiss_ivf(vectors, queries, nlist: int, probes: list[int]):
    import faiss

    t0 = time.perf_counter()
    quantiser = faiss.IndexFlatIP(vectors.shape[1])
    index = faiss.IndexIVFFlat(quantiser, vectors.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    # 40 points a list: faiss warns below 39; more only slows k-means (1M rows: 1,000 lists x 25 passes over 40,000)
    train = vectors[np.random.default_rng(1).choice(len(vectors), min(len(vectors), 40 * nlist), replace=False)]
    index.train(train)
    index.add(vectors)
    build = time.perf_counter() - t0
    size = _size(lambda p: faiss.write_index(index, p))
    for nprobe in probes:
        index.nprobe = nprobe
        yield f"faiss-ivf nlist={nlist} nprobe={nprobe}", build, size, _faiss_queries(index, vectors, queries)


def _faiss_queries(index, vectors, queries):
    found, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        _, rows = index.search(vectors[q:q + 1], K + 1)
        rows = rows[0][rows[0] != q][:K]
        times.append((time.perf_counter() - t0) * 1000)
        found.append(rows)
    return found, times


def hnswlib_index(vectors, queries, m: int, ef_construction: int, efs: list[int]):
    import hnswlib

    t0 = time.perf_counter()
    index = hnswlib.Index(space="ip", dim=vectors.shape[1])
    index.init_index(max_elements=len(vectors), ef_construction=ef_construction, M=m)
    index.add_items(vectors, np.arange(len(vectors)), num_threads=2)
    build = time.perf_counter() - t0
    size = _size(lambda p: index.save_index(p))
    for ef in efs:
        index.set_ef(ef)
        found, times = [], []
        for q in queries:
            t0 = time.perf_counter()
            rows, _ = index.knn_query(vectors[q:q + 1], k=K + 1, num_threads=1)
            rows = rows[0][rows[0] != q][:K]
            times.append((time.perf_counter() - t0) * 1000)
            found.append(rows)
        yield f"hnswlib M={m} efC={ef_construction} ef={ef}", build, size, (found, times)


def graph_line(vectors: np.ndarray, data: str) -> str:
    """The analyse job's kNN graph through ann.graph (HNSW above GRAPH_EXACT_MAX): time, recall@10 on 500 rows."""
    from app.embeddings import ann, knn

    n = len(vectors)
    saved = ann.GRAPH_EXACT_MAX
    ann.GRAPH_EXACT_MAX = 0
    try:
        t0 = time.perf_counter()
        rows, _ = ann.graph(vectors, knn.K)
        took = time.perf_counter() - t0
        files_took = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:  # the same index, saved for search: no second build
            saved_files = ann.build_for_analysis(np.arange(n), vectors, Path(tmp)) if n > ann.EXACT_MAX else {}
        files_took = time.perf_counter() - files_took
    finally:
        ann.GRAPH_EXACT_MAX = saved
    sample = np.random.default_rng(3).choice(n, 500, replace=False)
    truth = np.stack([similar.nearest(vectors, vectors[q], knn.K, exclude=int(q))[0] for q in sample])
    got = float(np.mean([len(set(rows[q].tolist()) & set(t.tolist())) / knn.K for q, t in zip(sample, truth)]))
    return (f"similar {data} n={n} dim={vectors.shape[1]} graph k={knn.K} through ann.graph (M={ann.M}, "
            f"efC={ann.EF_CONSTRUCTION}): {took:.0f} s (build + every row's search), recall {got:.3f}; "
            f"saving the index for search after it: {files_took:.1f} s ({len(saved_files)} files)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--dims", default="256")
    ap.add_argument("--data", default="clustered", choices=["clustered", "sheets", "fmnist"])
    ap.add_argument("--only", default="exact,faiss-hnsw,faiss-ivf,hnswlib")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--hnsw", default="32:80", help="M:efConstruction pairs, comma-separated")
    ap.add_argument("--ef", default="32,64,128")
    ap.add_argument("--nprobe", default="8,16,32")
    ap.add_argument("--graph", action="store_true", help="time ann.graph (the analyse job's kNN) instead")
    args = ap.parse_args()
    only = set(args.only.split(","))
    efs = [int(e) for e in args.ef.split(",")]
    pairs = [tuple(int(v) for v in p.split(":")) for p in args.hnsw.split(",")]
    for dim in (int(d) for d in args.dims.split(",")):
        for n in (int(s) for s in args.sizes.split(",")):
            if args.data == "fmnist":
                from bench._fmnist_embed import embeddings

                raw = embeddings()[1]
                n, dim = raw.shape
            else:
                raw = (clustered if args.data == "clustered" else sheets)(n, dim)
            vectors = through_the_app(raw)
            del raw
            if args.graph:
                print(graph_line(vectors, args.data), flush=True)
                continue
            queries = np.random.default_rng(2).choice(n, args.queries, replace=False)
            truth, times = exact(vectors, queries)
            head = f"similar {args.data} n={n} dim={dim} k={K} 2 cores"
            if "exact" in only:
                verdict = "under" if p95(times) < TARGET_MS else "OVER"
                print(f"{head} exact-numpy: build 0 s, p95 {p95(times):.2f} ms ({verdict} {TARGET_MS:.0f}), "
                      f"recall 1.000, memory {vectors.nbytes / 2**20:.0f} MiB", flush=True)
            runs = []
            if "faiss-hnsw" in only:
                runs += [faiss_hnsw(vectors, queries, m, efc, efs) for m, efc in pairs]
            if "faiss-ivf" in only:
                nlist = int(np.sqrt(n))  # faiss suggests 4-16 x sqrt(n); k-means on 2 cores takes minutes at that
                runs.append(faiss_ivf(vectors, queries, nlist, [int(p) for p in args.nprobe.split(",")]))
            if "hnswlib" in only:
                runs += [hnswlib_index(vectors, queries, m, efc, efs) for m, efc in pairs]
            for run in runs:
                for name, build, size, (found, qtimes) in run:
                    print(f"{head} {name}: build {build:.0f} s, p95 {p95(qtimes):.2f} ms, "
                          f"recall {recall(found, truth):.3f}, memory {size / 2**20:.0f} MiB", flush=True)
            if args.data == "fmnist":
                return


if __name__ == "__main__":
    main()
