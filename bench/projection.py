"""The map's 2-D projection: candidates timed and scored on real Fashion-MNIST vectors.

One line per (data, method): seconds for the projection in a fresh process (imports and Numba's
first-call compilation included, as in a freshly started worker), its CPU seconds (all threads: wall time
on a busy machine overstates what two free cores take), the child's peak memory, and quality:

  same10   share of each real point's 10 nearest 2-D neighbours with its class (what the map shows:
           clusters of one colour)
  trust10  trustworthiness at k=10 on a 4,000-point sample (sklearn's definition: 1.0 = no 2-D
           neighbour that was not near in the original space)

Data:
  cnn     Fashion-MNIST train + test (70,000) through the app's small CNN (bench/_fmnist_embed.py, 256-d,
          unit rows as the analyse job hands them over), padded to --n rows with jittered copies
          (N(0, 0.02^2) per axis, re-normalised; scored on the 70,000 real rows only)
  pixels  the first --n Fashion-MNIST training images as raw pixels, centred, PCA to 50-d, unit rows: a
          second condition, a space no network shaped

Candidates (`--methods`): pca (numpy SVD, the first placeholder), umap (umap-learn), tsne (openTSNE, FFT
interpolation), pacmap. Every one seeded.

Run: .venv/bin/python bench/projection.py [--data cnn|pixels] [--n 100000] [--methods pca,umap,tsne,pacmap]
Candidates not installed in .venv can be put on the path with PROJECTION_BENCH_PATH=/some/dir (appended,
so the venv's numpy wins).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if os.environ.get("PROJECTION_BENCH_PATH"):
    sys.path.append(os.environ["PROJECTION_BENCH_PATH"])
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SEED = 0
K = 10
TRUST_SAMPLE = 4_000


def data(kind: str, n: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(unit float32 rows (n, D), labels (n,), how many rows are real)."""
    if kind == "cnn":
        from bench._fmnist_embed import embeddings

        labels, vectors = embeddings()
        real = min(n, len(vectors))
        vectors, labels = vectors[:real], labels[:real]
        if n > real:
            rng = np.random.default_rng(SEED)
            pick = rng.integers(0, real, n - real)
            extra = vectors[pick] / np.linalg.norm(vectors[pick], axis=1, keepdims=True)
            extra = extra + rng.normal(0, 0.02, extra.shape).astype(np.float32)
            vectors, labels = np.concatenate([vectors, extra]), np.concatenate([labels, labels[pick]])
    else:
        from tests import fmnist

        images, labels = fmnist.load("train", n)
        x = images.reshape(len(images), -1).astype(np.float32) / 255
        x -= x.mean(axis=0)
        _, _, vt = np.linalg.svd(x[:20_000], full_matrices=False)
        vectors, real = x @ vt[:50].T, len(x)
    vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return vectors.astype(np.float32), labels, real


def run(method: str, vectors: np.ndarray) -> np.ndarray:
    if method == "pca":
        from app.embeddings import projection

        return projection.pca(vectors, seed=SEED) if hasattr(projection, "pca") else projection.project(vectors, SEED)
    if method == "app":  # whatever app.embeddings.projection.project does now
        from app.embeddings import projection

        return projection.project(vectors, seed=SEED)
    if method == "umap":
        import umap

        return umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine", random_state=SEED,
                         low_memory=True).fit_transform(vectors)
    if method == "umap-par":  # unseeded: umap-learn runs its SGD on every core only without a random_state
        import umap

        return umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine", low_memory=True, n_jobs=2).fit_transform(vectors)
    if method == "tsne":
        import openTSNE

        return np.asarray(openTSNE.TSNE(n_jobs=2, random_state=SEED, negative_gradient_method="fft",
                                        metric="cosine").fit(vectors))
    if method == "pacmap":
        import pacmap

        return pacmap.PaCMAP(n_components=2, n_neighbors=10, random_state=SEED).fit_transform(vectors)
    raise ValueError(f"unknown method {method}")


def child(method: str, kind: str, n: int, out: str) -> None:
    vectors, _, _ = data(kind, n)
    cpu = _cpu()
    start = time.perf_counter()
    xy = run(method, vectors)
    seconds = time.perf_counter() - start
    np.save(out, np.asarray(xy, dtype=np.float32))
    print(json.dumps({"seconds": seconds, "cpu": _cpu() - cpu,
                      "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def _cpu() -> float:
    # CPU seconds (every thread): on a machine shared with other work, wall time overstates what two free
    # cores would take; cpu / 2 is the floor for a method that keeps both busy.
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def same_class(xy: np.ndarray, labels: np.ndarray, real: int) -> float:
    from scipy.spatial import cKDTree

    _, nb = cKDTree(xy).query(xy[:real], k=K + 1)
    return float(np.mean(labels[nb[:, 1:]] == labels[:real, None]))


def trust(vectors: np.ndarray, xy: np.ndarray, real: int) -> float:
    from sklearn.manifold import trustworthiness

    pick = np.random.default_rng(SEED).choice(real, min(TRUST_SAMPLE, real), replace=False)
    return float(trustworthiness(vectors[pick], xy[pick], n_neighbors=K, metric="cosine"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="cnn", choices=["cnn", "pixels"])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--methods", default="pca,umap,tsne,pacmap")
    parser.add_argument("--one")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.one:
        return child(args.one, args.data, args.n, args.out)
    vectors, labels, real = data(args.data, args.n)
    for method in args.methods.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            out = str(Path(tmp) / "xy.npy")
            t0 = time.perf_counter()
            done = subprocess.run([sys.executable, __file__, "--one", method, "--data", args.data, "--n", str(args.n),
                                   "--out", out], capture_output=True, text=True)
            if done.returncode != 0:
                print(f"projection {method:8} data={args.data} n={args.n}: FAILED {done.stderr.strip()[-300:]}")
                continue
            got = json.loads(done.stdout.strip().splitlines()[-1])
            xy = np.load(out)
        finite = bool(np.isfinite(xy).all())
        print(f"projection {method:8} data={args.data} n={args.n:,} seconds={got['seconds']:.1f} "
              f"cpu={got['cpu']:.1f} process={time.perf_counter() - t0:.1f} peak_mib={got['peak_mib']:.0f} "
              f"same10={same_class(xy, labels, real):.3f} trust10={trust(vectors, xy, real):.3f} finite={finite} "
              f"load={os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
