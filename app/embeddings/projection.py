"""The map's 2-D projection of an embedding space: PaCMAP (the `pacmap` package), PCA below SMALL rows.

Chosen by bench/projection.py on Fashion-MNIST: 70,000 real images through the
app's small CNN, padded to 100,000 rows with jittered copies ("cnn"), and the
raw pixels' PCA-50 ("pixels"). same10: share of each real point's 10 nearest
2-D neighbours with its class (what the map shows); trust10: trustworthiness
at k = 10 (sklearn; 1.0 = no 2-D neighbour that was not near in the space).
Measured on the two cores of a machine shared with other work (load ~10), so
wall seconds are inflated ~3x; CPU seconds are the steadier figure:

  method     data     n        wall s   CPU s   peak MiB  same10  trust10
  PCA        cnn      100,000     9.3     3.1      348    0.697   0.934
  umap-learn cnn      100,000   480.9   159.0    1,365    0.843   0.987
  PaCMAP     cnn      100,000   421.5    92.6      681    0.841   0.985
  openTSNE   cnn      100,000 1,185.1   404.7    1,178    0.863   0.992
  PCA        pixels    20,000     1.5     0.8        -    0.420   0.913
  PaCMAP     pixels    20,000    68.5    23.5        -    0.697   0.979
  umap-learn pixels    20,000   150.3    79.3        -    0.723   0.984
  openTSNE   pixels    20,000   178.8    98.6        -    0.774   0.991
  (peak memory on pixels is the loading of the images, the same for every method)

PaCMAP keeps UMAP's neighbourhoods (same10 and trust10 within 0.002) for 60 %
of its CPU time and half its memory; its kNN runs on faiss, which the app already
uses for similar images. openTSNE (FFT, both cores) draws the tightest classes
(same10 +0.02) for 4.4x PaCMAP's CPU: over 3 minutes on two free cores at 100,000.
On raw pixels, a space no network shaped, UMAP separates classes a little better
(same10 +0.026) for 3.4x PaCMAP's CPU and openTSNE clearly better (+0.077) for
4.2x; the map is drawn from a model's embeddings, where the three are close, and
t-SNE's cost grows past what a worker should spend at a million images. umap-learn
with a seed runs its optimisation on one thread
(umap-learn only parallelises unseeded runs); a map that moves on every analysis
would make points jump between analyses, so the seed stays. PCA keeps only the
two widest directions: classes overlap (same10 0.70).

Deterministic: PaCMAP with a random_state gives bit-identical rows run to run.
Below SMALL rows PaCMAP's pair counts shrink below what it needs (3 rows fail
outright) and a layout says little anyway: PCA then. Numba compiles PaCMAP's
kernels on a machine's first analysis (28 CPU s, cached on disk after, in
pacmap's __pycache__); a warm worker's import and a 600-row map take 4.5 CPU s.
Coordinates are centred and scaled by one factor into [-1, 1] (the aspect kept).
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger("loupe.projection")
SAMPLE = 20_000  # rows PCA fits its axes on; every row is then projected
SMALL = 100  # below this many rows: PCA
NEIGHBOURS = 10  # PaCMAP's default (its paper's choice for 1,000 to 1,000,000 points)


def project(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    """(n, 2) float32 coordinates in [-1, 1] for unit rows `vectors` (n, D); the same rows give the same map."""
    vectors = np.asarray(vectors, dtype=np.float32)
    n = len(vectors)
    if n == 0:
        return np.zeros((0, 2), dtype=np.float32)
    if n < SMALL:
        return _fit_box(pca(vectors, seed))
    try:
        import pacmap
    except ImportError:  # a worker installed without the `worker` extra
        log.warning("pacmap is not installed: the map falls back to PCA (pip install 'loupe[worker]')")
        return _fit_box(pca(vectors, seed))
    reducer = pacmap.PaCMAP(n_components=2, n_neighbors=NEIGHBOURS, random_state=seed, verbose=False)
    return _fit_box(reducer.fit_transform(vectors, init="pca"))


def pca(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    """(n, 2) float32: the rows on their two principal axes (fitted on at most SAMPLE rows)."""
    n = len(vectors)
    if n == 0:
        return np.zeros((0, 2), dtype=np.float32)
    rng = np.random.default_rng(seed)
    fit = np.asarray(vectors[np.sort(rng.choice(n, SAMPLE, replace=False))] if n > SAMPLE else vectors,
                     dtype=np.float32)
    mean = fit.mean(axis=0)
    _, _, vt = np.linalg.svd(fit - mean, full_matrices=False)
    axes = vt[:2].T if vt.shape[0] >= 2 else np.pad(vt.T, ((0, 0), (0, 2 - vt.shape[0])))
    return ((np.asarray(vectors, dtype=np.float32) - mean) @ axes).astype(np.float32)


def _fit_box(xy: np.ndarray) -> np.ndarray:
    """Centred on the bounding box and scaled by one factor so the longer side spans [-1, 1]."""
    xy = np.nan_to_num(np.asarray(xy, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if not len(xy):
        return xy.astype(np.float32).reshape(0, 2)
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    half = float((hi - lo).max()) / 2
    out = (xy - (lo + hi) / 2) / (half if half > 0 else 1.0)
    return np.clip(out, -1, 1).astype(np.float32)
