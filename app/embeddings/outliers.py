"""Outlier scores: how far an image lies from the labelled images nearest to it, next to its class's usual.

raw distance d = cosine distance to the image's K-th nearest *labelled* (not
excluded) image, itself left out; with no label yet, to its K-th nearest image
of any kind. Labelled images are the reference because strays come in groups:
a scrape that went wrong brings in dozens of photos that look alike, and among
all images they are each other's nearest neighbours. Measured (bench/outliers.py,
condition A: 3,033 images, a train job's space at 84 % accuracy, 20 noise
images and 13 photos planted; ranks of 3,033, 0 = strangest):

  reference, statistic (K=10)      noise median / worst   photos median / worst
  every image, mean of the K       2,511 / 2,755          2,661 / 2,823   (the strays hide in their group)
  labelled images, mean of the K      82 / 104               222 / 311
  labelled images, K-th distance      47 / 74                149 / 276   (chosen)

(the K-th distance is the deep-kNN out-of-distribution score of Sun et al., 2022.)

Classes are not equally spread (bags spread, trousers crowd), so d is measured
within the image's group as a robust z-score, z = (d - median_g) / scale_g,
scale_g = 1.4826 * MAD_g (a standard deviation for normal data) but never
narrower than the usual spread within a class (the MAD of every image's
distance from its own group's median: SCALE_FLOOR): a tight class's MAD is
tiny, and without a floor its ordinary members reach high z by the dozen.

The group of an image (decided here; the issue leaves it open):
  - labelled: its current label;
  - unlabelled with a prediction from the space's model: the class the model
    predicts (what it would be labelled; a stray photo predicted "Bag" is
    compared with bags, and it is as far from them as from anything);
  - otherwise (no model yet, an embed space before any training): every image.
A group with fewer than MIN_GROUP members has no stable median or MAD: it is
measured against every image instead. Excluded images get a score but neither
shape a group's statistics nor are they ever flagged.

Z_CUT and the caps decide which scores become outlier flags; the measurements
they come from are quoted beside them (bench/outliers.py).
"""

from __future__ import annotations

import numpy as np

MIN_GROUP = 20  # members a group needs for its own median and MAD (fewer: judged against every image)
MAD_SCALE = 1.4826  # MAD -> standard deviation for normal data
# A group's scale is at least this share of the pooled within-group one. Median ranks of the strays (A noise,
# A photos, B letters, B noise) at 0.5: 74, 187, 95, 343; at 1: 47, 149, 89, 296; at 2: 22, 114, 140, 184;
# the global scale alone (no classes): 21, 126, 215, 45. Larger floors find noise, smaller ones letters.
SCALE_FLOOR = 1.0
# The cut and the caps. bench/outliers.py, strays over the cut / ordinary Fashion-MNIST images over it:
#
#   z >=     A: 33 strays, 3,000 ordinary     B: 50 strays, 2,060 ordinary
#   3.0      32 / 198                          22 / 94
#   3.5      30 / 162                          20 / 70
#   4.0      25 / 124                          18 / 53
#   5.0      21 / 87                           10 / 31
#
# No cut separates them: a trained classifier's space has odd clothing (Fashion-MNIST's own misfits) as far
# out as the strays. 3.5 (the usual robust-z cut of Iglewicz and Hoaglin) keeps 91 % of A's strays and 40 %
# of B's (B's letters look like the data); the cap then keeps the strongest: a review queue gets the top 2 %
# (B: 43 flags, 10 of them strays: 23 % against the strays' 2.4 % of the images).
Z_CUT = 3.5
MAX_FLAG_SHARE = 0.02  # at most this share of a space's images flagged by one analysis ...
MAX_FLAGS = 500  # ... and at most this many: a review queue a person can get through


def kth_distance(knn_distance: np.ndarray) -> np.ndarray:
    """float32 (n,): each row's largest finite neighbour distance (its K-th nearest; NaN for a row with none)."""
    d = np.asarray(knn_distance, dtype=np.float32)
    if d.ndim != 2 or d.shape[1] == 0:  # a space of one image: no neighbour at all
        return np.full(len(d), np.nan, dtype=np.float32)
    finite = np.isfinite(d)
    return np.where(finite.any(axis=1), np.where(finite, d, -np.inf).max(axis=1), np.nan).astype(np.float32)


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
    median, scale, _ = robust_stats(d, groups, reference)
    return z_score(d, median, scale), median


def z_score(d: np.ndarray, median: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """float32: (d - median) / scale, NaN where that is not finite."""
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (np.asarray(d, dtype=np.float32) - median) / scale
    return np.where(np.isfinite(z), z, np.nan).astype(np.float32)


def robust_stats(d: np.ndarray, groups: np.ndarray, reference: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """(median float32 (n,), scale float32 (n,), (global median, global scale)) of each row's group, as
    robust_z uses them; the global pair is what a group too small for its own gets (an extension needs it)."""
    d = np.asarray(d, dtype=np.float32)
    groups = np.asarray(groups, dtype=np.int64)
    ref = np.ones(len(d), dtype=bool) if reference is None else np.asarray(reference, dtype=bool)
    g_median, g_scale = _centre_scale(d[ref])
    median = np.full(len(d), g_median, dtype=np.float32)
    scale = np.full(len(d), g_scale, dtype=np.float32)
    for g in np.unique(groups[groups >= 0]):
        members = groups == g
        shaping = members & ref
        if shaping.sum() < MIN_GROUP:
            continue
        m, s = _centre_scale(d[shaping])
        median[members], scale[members] = m, s
    # The floor: the spread of distances around their own group's median, pooled over every group (not the
    # global MAD, which the gaps between the classes' medians would inflate).
    _, pooled = _centre_scale((d - median)[ref])
    floor = max(SCALE_FLOOR * pooled, 1e-6)
    return median, np.maximum(scale, floor).astype(np.float32), (float(g_median), float(max(g_scale, floor)))


def to_flag(z: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """Rows to flag, strongest first: z >= Z_CUT among `eligible` rows, at most the cap for this many rows."""
    z = np.asarray(z, dtype=np.float32)
    cap = int(min(MAX_FLAGS, max(1, np.ceil(MAX_FLAG_SHARE * len(z)))))
    rows = np.flatnonzero(np.asarray(eligible, dtype=bool) & np.isfinite(z) & (z >= Z_CUT))
    rows = rows[np.lexsort((rows, -z[rows]))]
    return rows[:cap]
