"""The map's 2-D projection of an embedding space.

First version: PCA (numpy SVD of the centred rows), scaled to [-1, 1]. Fast
and deterministic, but it keeps only the two widest directions, so classes
overlap; see the benchmark before replacing it.
"""

from __future__ import annotations

import numpy as np

SAMPLE = 20_000  # rows the principal axes are fitted on; every row is then projected


def project(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    """(n, 2) float32 coordinates in [-1, 1] for unit rows `vectors` (n, D)."""
    n = len(vectors)
    if n == 0:
        return np.zeros((0, 2), dtype=np.float32)
    rng = np.random.default_rng(seed)
    fit = np.asarray(vectors[np.sort(rng.choice(n, SAMPLE, replace=False))] if n > SAMPLE else vectors,
                     dtype=np.float32)
    mean = fit.mean(axis=0)
    _, _, vt = np.linalg.svd(fit - mean, full_matrices=False)
    axes = vt[:2].T if vt.shape[0] >= 2 else np.pad(vt.T, ((0, 0), (0, 2 - vt.shape[0])))
    xy = (np.asarray(vectors, dtype=np.float32) - mean) @ axes
    scale = np.abs(xy).max(axis=0)
    return (xy / np.where(scale > 0, scale, 1.0)).astype(np.float32)
