"""Stratified train / val / test splits, k-fold assignment and the content hash. Pure functions.

Stratification is by (class, source) group. Within a group, images are put in
a seeded order that depends only on the seed and on each image's own sha256
(splitmix64 of the hash's first 64 bits mixed with the seed), so adding images
to a later snapshot moves few of the old ones. The first round(n * test)
images of a group go to test, the next round(n * val) to val, the rest to
train: every group's split sizes are within one image of ideal.

Folds cover *every* image of the snapshot (train, val and test), because
out-of-sample predictions are wanted for every image when ranking likely
mislabels. They are dealt round-robin along the same order, continuing from
one group to the next, so each group's folds and the folds overall differ in
size by at most one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np

SPLITS = ("train", "val", "test")


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a fast, well-spread 64-bit hash (uint64 arithmetic wraps)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def order_keys(seed: int, shas: Sequence[str]) -> np.ndarray:
    """Each image's place in the seeded shuffle (uint64; sort ascending)."""
    if not shas:
        return np.empty(0, np.uint64)
    prefix = np.frombuffer(bytes.fromhex("".join(s[:16] for s in shas)), dtype=">u8").astype(np.uint64)
    salt = _mix(np.array([seed % 2**64], dtype=np.uint64))[0]
    return _mix(prefix ^ salt)


def assign(
    shas: Sequence[str], groups: Sequence[tuple], *, val: float, test: float, seed: int, folds: int
) -> list[tuple[str, int]]:
    """Split and fold for each image.

    Parameters
    ----------
    shas : sequence of str, length N
        The images' sha256 (hex).
    groups : sequence of tuple, length N
        What is stratified on, e.g. (class id, source name); tuples must sort.
    val, test : float
        Fractions of each group for validation and test; the rest is train.
    seed : int
        Different seeds give different, equally stratified, splits.
    folds : int
        Number of folds (>= 2) dealt over all images.

    Returns
    -------
    list of (split, fold), length N
        Split one of "train", "val", "test"; fold in 0..folds-1; aligned with the input.
    """
    n = len(shas)
    if n == 0:
        return []
    names = sorted(set(groups))
    index = {g: i for i, g in enumerate(names)}
    codes = np.fromiter((index[g] for g in groups), dtype=np.int64, count=n)
    order = np.lexsort((order_keys(seed, shas), codes))  # by group, then seeded order
    counts = np.bincount(codes, minlength=len(names))
    starts = np.cumsum(counts) - counts
    n_test = np.array([round(c * test) for c in counts.tolist()])
    n_val = np.array([round(c * val) for c in counts.tolist()])
    sorted_codes = codes[order]
    pos = np.arange(n) - starts[sorted_codes]
    split_sorted = np.where(pos < n_test[sorted_codes], 2, np.where(pos < (n_test + n_val)[sorted_codes], 1, 0))
    split_code = np.empty(n, np.int64)
    fold = np.empty(n, np.int64)
    split_code[order] = split_sorted
    fold[order] = np.arange(n) % folds  # round-robin along the order, continuing across groups
    return [(SPLITS[s], f) for s, f in zip(split_code.tolist(), fold.tolist())]


def content_hash(rows: Iterable[tuple[str, str, str, int]]) -> str:
    """sha256 over sorted (image sha256, class name, split, fold) lines.

    Same images with the same labels, splits and folds give the same hash,
    whatever the snapshot's name, creation time or taxonomy version number.
    """
    text = "".join(f"{sha}\t{cls}\t{split}\t{fold}\n" for sha, cls, split, fold in sorted(rows))
    return hashlib.sha256(text.encode()).hexdigest()
