"""Outlier scores over a kNN graph: how far an image lies from its nearest neighbours, next to its class's usual.

raw distance d = mean cosine distance to the image's K nearest neighbours in the
space (app.embeddings.knn). Classes are not equally tight (trousers crowd
together, bags spread), so d is normalised within the image's group as a robust
z-score: z = (d - median_g) / (1.4826 * MAD_g), the MAD scaled to a standard
deviation under a normal distribution.

The group of an image (decided here; the issue leaves it open):
  - labelled: its current label;
  - unlabelled with a prediction from the space's model: the class the model
    predicts (what it would be labelled; a stray photo predicted "Bag" is
    compared with bags, and it is as far from them as from anything);
  - otherwise (no model yet, an embed space before any training): every image.
A group with fewer than MIN_GROUP members has no stable median or MAD: it is
measured against every image instead. Excluded images get a score but neither
shape a group's statistics nor are they ever flagged.

Z_CUT and MAX_FLAGS decide which scores become outlier flags; see bench/outliers.py
for the measurements they come from (quoted beside them).
"""

from __future__ import annotations

import numpy as np

MIN_GROUP = 20  # members a group needs for its own median and MAD (fewer: judged against every image)
MAD_SCALE = 1.4826  # MAD -> standard deviation for normal data
SCALE_FLOOR = 0.25  # a group's scale is at least this share of the global one: a near-identical class is not
#                     a reason to flag its few slightly different members by the hundred
# bench/outliers.py (two trained Fashion-MNIST spaces, each with planted strays) sets these two:
Z_CUT = 3.5
MAX_FLAG_SHARE = 0.02  # at most this share of a space's images flagged by one analysis ...
MAX_FLAGS = 500  # ... and at most this many: a review queue a person can get through


def mean_distance(knn_distance: np.ndarray) -> np.ndarray:
    """float32 (n,): mean of each row's finite neighbour distances (NaN for a row with none)."""
    d = np.asarray(knn_distance, dtype=np.float32)
    finite = np.isfinite(d)
    count = finite.sum(axis=1)
    total = np.where(finite, d, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan).astype(np.float32)


def _centre_scale(values: np.ndarray) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return 0.0, 1.0
    median = float(np.median(values))
    return median, MAD_SCALE * float(np.median(np.abs(values - median)))


def robust_z(d: np.ndarray, groups: np.ndarray, reference: np.ndarray | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """(z float32 (n,), usual distance float32 (n,): the median of each row's group) for distances `d`.

    `groups` int (n,): a group id per row, -1 for "against every image". `reference` bool (n,): rows that
    shape the statistics (default all); the others (excluded images) are scored against them.
    """
    d = np.asarray(d, dtype=np.float32)
    groups = np.asarray(groups, dtype=np.int64)
    ref = np.ones(len(d), dtype=bool) if reference is None else np.asarray(reference, dtype=bool)
    g_median, g_scale = _centre_scale(d[ref])
    floor = max(SCALE_FLOOR * g_scale, 1e-6)
    median = np.full(len(d), g_median, dtype=np.float32)
    scale = np.full(len(d), max(g_scale, floor), dtype=np.float32)
    for g in np.unique(groups[groups >= 0]):
        members = groups == g
        shaping = members & ref
        if shaping.sum() < MIN_GROUP:
            continue
        m, s = _centre_scale(d[shaping])
        median[members], scale[members] = m, max(s, floor)
    z = (d - median) / scale
    return np.where(np.isfinite(z), z, np.nan).astype(np.float32), median


def to_flag(z: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """Rows to flag, strongest first: z >= Z_CUT among `eligible` rows, at most the cap for this many rows."""
    z = np.asarray(z, dtype=np.float32)
    cap = int(min(MAX_FLAGS, max(1, np.ceil(MAX_FLAG_SHARE * len(z)))))
    rows = np.flatnonzero(np.asarray(eligible, dtype=bool) & np.isfinite(z) & (z >= Z_CUT))
    rows = rows[np.lexsort((rows, -z[rows]))]
    return rows[:cap]
