"""Stratified train / val / test splits, k-fold assignment and the content hash. Pure functions.

Stratification is by (class, source) group. Within a group, images are ordered
by sha256(seed + image sha256): a shuffle that depends only on the seed and on
the image itself, so adding images to a later snapshot moves few of the old
ones. The first round(n * test) images of a group go to test, the next
round(n * val) to val, the rest to train: every group's split sizes are within
one image of ideal.

Folds cover *every* image of the snapshot (train, val and test), because
out-of-sample predictions are wanted for every image when ranking likely
mislabels. They are dealt round-robin along the same order, continuing from
one group to the next, so each group's folds and the folds overall differ in
size by at most one.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence

SPLITS = ("train", "val", "test")


def order_key(seed: int, sha256: str) -> bytes:
    return hashlib.sha256(f"{seed}:{sha256}".encode()).digest()


def assign(
    items: Sequence[tuple[int, str, tuple]], *, val: float, test: float, seed: int, folds: int
) -> dict[int, tuple[str, int]]:
    """Split and fold for each image.

    Parameters
    ----------
    items : sequence of (image id, image sha256, group)
        The group (a sortable tuple) is what is stratified on, e.g. (class id, source id).
    val, test : float
        Fractions of each group for validation and test; the rest is train.
    seed : int
        Different seeds give different, equally stratified, splits.
    folds : int
        Number of folds (>= 2) dealt over all images.

    Returns
    -------
    dict
        image id -> (split, fold), split one of "train", "val", "test", fold in 0..folds-1.
    """
    groups: dict[tuple, list[tuple[bytes, int]]] = defaultdict(list)
    for image_id, sha, group in items:
        groups[group].append((order_key(seed, sha), image_id))
    out: dict[int, tuple[str, int]] = {}
    dealt = 0
    for group in sorted(groups):
        members = sorted(groups[group])
        n = len(members)
        n_test, n_val = round(n * test), round(n * val)
        for pos, (_, image_id) in enumerate(members):
            split = "test" if pos < n_test else "val" if pos < n_test + n_val else "train"
            out[image_id] = (split, (dealt + pos) % folds)
        dealt += n
    return out


def content_hash(rows: Iterable[tuple[str, str, str, int]]) -> str:
    """sha256 over sorted (image sha256, class name, split, fold) lines.

    Same images with the same labels, splits and folds give the same hash,
    whatever the snapshot's name, creation time or taxonomy version number.
    """
    h = hashlib.sha256()
    for sha, cls, split, fold in sorted(rows):
        h.update(f"{sha}\t{cls}\t{split}\t{fold}\n".encode())
    return h.hexdigest()
