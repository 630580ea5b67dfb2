"""Near-duplicate groups from perceptual hashes, fast enough for 1,000,000 images. Pure numpy.

Two images are near-duplicates when their 64-bit pHashes differ in at most
`max_distance` bits; groups are the connected components of that relation.

How it stays fast: images are first bucketed by exact pHash (copies and
re-encodes share one), so only distinct hashes are compared. Distinct hashes
are then compared only within buckets of a multi-index: the 64 bits are cut
into m bands, and two hashes within `max_distance` bits differ in at most
max_distance // m bits of at least one band (pigeonhole), so each hash looks
up its own band values and those few bits away (`_bands` picks m for the
hashes at hand). Work grows with the sizes of those buckets, not with the
square of the number of images, and candidates are checked a bounded piece at
a time, so memory stays flat (1,000,000 random hashes: 13-19 s, 260 MB peak,
against 164 s and 5.7 GB with 5 fixed bands: bench/neardup_scale.py).

A pHash match alone is not enough on small, centred, look-alike images: among
10,000 Fashion-MNIST images, 3,613 pairs are within 4 bits (190 groups holding
1,588 images, chained), of which 3 pairs are the same picture (bench/neardup.py:
sneakers, sweaters and tees are centred on black and alike at 8x8 frequencies).
So callers pass `confirm`, a second, independent check (see
`app.snapshots.looks`), and only candidate pairs it accepts join a group.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

MAX_DISTANCE = 4


BAND_BITS = 22  # the widest band: its bucket table has 2**22 entries (32 MB of int64)
CHUNK = 1 << 16  # hashes probed at a time
PAIRS = 1 << 22  # candidates checked at a time (~100 MB of arrays): bounds memory on crowded buckets


def _split(m: int) -> list[tuple[int, int]]:
    widths = [64 // m + (1 if i < 64 % m else 0) for i in range(m)]
    shifts = np.cumsum([0, *widths[:-1]])
    return [(int(sh), w) for sh, w in zip(shifts, widths)]


def _band_values(values: np.ndarray, shift: int, width: int) -> np.ndarray:
    return ((values >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(np.int64)


def _bands(values: np.ndarray, max_distance: int) -> tuple[list[tuple[int, int]], int]:
    """(shift, width) of the bands covering the 64 bits, and the radius searched in each.

    Two hashes within `max_distance` bits differ in at most max_distance // m bits in at
    least one of m bands (pigeonhole), so each band is searched within that radius. Few
    wide bands cost more probes per hash but find fewer chance candidates in each; m is
    the one with the least work for these hashes: the tables, the probes, and the
    candidates (each band's sum of squared bucket sizes, times its probes). Uniform
    hashes get 5 bands searched exactly up to ~200,000 and 3 bands within 1 bit beyond.
    On 20,000 Fashion-MNIST images (crowded hashes) it picks 5 bands, the fastest of the
    three layouts there: 0.54 s, against 0.72 s with 4 and 1.8 s with 3.
    """
    from math import comb

    def work(m: int) -> float:
        bands, radius = _split(m), max_distance // m
        probes = sum(comb(min(w for _, w in bands), k) for k in range(radius + 1))
        crowding = sum(float(np.square(np.bincount(_band_values(values, sh, w)), dtype=np.float64).sum())
                       for sh, w in bands)
        return sum(2 ** w for _, w in bands) + len(values) * probes * m + crowding * probes

    m = min(range(-(-64 // BAND_BITS), max(max_distance, 3) + 2), key=work)
    return _split(m), max_distance // m


def _masks(width: int, radius: int) -> np.ndarray:
    """Every XOR mask of `width` bits with at most `radius` bits set (0 first)."""
    from itertools import combinations

    masks = [sum(1 << b for b in bits) for r in range(radius + 1) for bits in combinations(range(width), r)]
    return np.array(masks, dtype=np.int64)


def _close_pairs(values: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (a < b) of distinct 64-bit `values` within `max_distance` bits.

    A multi-index: per band, a table of where each band value's members lie (sorted
    by band value), looked up at the probing hash's band value XOR every mask within
    the band's radius. Candidates are checked by popcount a chunk at a time.
    """
    bands, radius = _bands(values, max_distance)
    heads, tails = [], []
    for shift, width in bands:
        band = _band_values(values, shift, width)
        order = np.argsort(band, kind="stable")
        counts = np.bincount(band, minlength=1 << width)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        masks = _masks(width, radius)
        for lo in range(0, len(values), CHUNK):
            who = np.repeat(np.arange(lo, min(lo + CHUNK, len(values))), len(masks))
            keys = (band[who] ^ np.tile(masks, len(who) // len(masks)))
            n = counts[keys]
            cut = np.searchsorted(np.cumsum(n), np.arange(PAIRS, int(n.sum()), PAIRS))  # bounded pieces
            for k, w, c in zip(np.split(keys, cut), np.split(who, cut), np.split(n, cut)):
                total = int(c.sum())
                if not total:
                    continue
                a = np.repeat(w, c)
                b = order[np.repeat(starts[k] - np.cumsum(c) + c, c) + np.arange(total)]  # each run from its start
                close = (np.bitwise_count(values[a] ^ values[b]) <= max_distance) & (a != b)
                heads.append(np.minimum(a[close], b[close]))
                tails.append(np.maximum(a[close], b[close]))
    if not heads:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    pairs = np.unique(np.stack([np.concatenate(heads), np.concatenate(tails)], axis=1), axis=0)
    return pairs[:, 0], pairs[:, 1]


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected-component label (smallest member index) for each of n nodes."""
    labels = np.arange(n)
    if len(a) == 0:
        return labels
    while True:
        low = np.minimum(labels[a], labels[b])
        before = labels.copy()
        np.minimum.at(labels, a, low)
        np.minimum.at(labels, b, low)
        while True:  # pointer jumping: every node points at its component's current root
            jumped = labels[labels]
            if np.array_equal(jumped, labels):
                break
            labels = jumped
        if np.array_equal(labels, before):
            return labels


Confirm = Callable[[np.ndarray, np.ndarray], np.ndarray]


def candidate_pairs(phashes: np.ndarray, *, max_distance: int = MAX_DISTANCE) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (a, b) of images whose pHashes are within `max_distance` bits.

    Images with identical hashes are paired with the first of them only (a star,
    not every pair), and distinct hashes through those first images, so a bucket
    of a thousand identical hashes costs a thousand pairs, not half a million.
    """
    hashes = np.asarray(phashes, dtype=np.int64).view(np.uint64)
    distinct, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    heads, tails = [], []
    if max_distance > 0 and len(distinct) > 1:
        a, b = _close_pairs(distinct, max_distance)
        heads.append(first[a])
        tails.append(first[b])
    others = np.flatnonzero(first[inverse] != np.arange(len(hashes)))
    heads.append(first[inverse[others]])
    tails.append(others)
    a, b = np.concatenate(heads), np.concatenate(tails)
    if len(a):  # a pair found through several bands once
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        pairs = np.unique(np.stack([lo, hi], axis=1), axis=0)
        a, b = pairs[:, 0], pairs[:, 1]
    return a.astype(np.int64), b.astype(np.int64)


def groups(phashes: np.ndarray, *, max_distance: int = MAX_DISTANCE, confirm: Confirm | None = None) -> np.ndarray:
    """Near-duplicate group of each image.

    Parameters
    ----------
    phashes : ndarray of int64, shape (N,)
        Perceptual hashes as stored (signed 64-bit).
    max_distance : int
        Largest Hamming distance that still counts as a candidate.
    confirm : callable, optional
        ``confirm(a, b) -> bool array``: for index arrays of candidate pairs, whether each pair really
        is a near-duplicate. Without it every pHash candidate counts.

    Returns
    -------
    ndarray of int64, shape (N,)
        A group number per image; images with the same number are near-duplicates
        (directly or through a chain). Numbers are arbitrary but consistent.
    """
    n = len(phashes)
    if n == 0:
        return np.empty(0, np.int64)
    a, b = candidate_pairs(phashes, max_distance=max_distance)
    if confirm is not None and len(a):
        ok = np.asarray(confirm(a, b), dtype=bool)
        a, b = a[ok], b[ok]
    return _components(n, a, b)
