"""Near-duplicates whose labels disagree, and duplicates that cross sources or splits. Pure numpy.

Groups come from `app.snapshots.neardup.groups` (perceptual hashes within a few
bits, each pair confirmed by comparing the thumbnails and, where both images
have one in the latest embedding space, their embeddings; transitively).
Embeddings confirm pHash candidates and never propose groups of their own: a
model puts look-alikes of one class close together by design, so proposing
from them would flag ordinary same-class neighbours as copies.

Labels are class indices (or ids) with -1 for an unlabelled image.
"""

from __future__ import annotations

import numpy as np

from app.snapshots import neardup

UNLABELLED = -1


def phash_groups(phashes, *, max_distance: int = neardup.MAX_DISTANCE, confirm=None) -> np.ndarray:
    """Near-duplicate group per image from 64-bit perceptual hashes, each candidate pair confirmed by
    `confirm` when given (see `app.snapshots.neardup.groups`; `app.snapshots.looks.confirmer` checks the
    thumbnails and the latest space's embeddings)."""
    return neardup.groups(np.asarray(phashes, dtype=np.int64), max_distance=max_distance, confirm=confirm)


def _check(groups, labels) -> tuple[np.ndarray, np.ndarray]:
    g, y = np.asarray(groups, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    if g.shape != y.shape or g.ndim != 1:
        raise ValueError("groups and labels must be 1-d arrays of equal length")
    return g, y


def label_conflicts(groups, labels) -> dict:
    """Which images share a near-duplicate group with an image labelled differently.

    Parameters
    ----------
    groups : array_like of int, shape (N,)
        Near-duplicate group of each image.
    labels : array_like of int, shape (N,)
        Current label of each image, -1 when unlabelled.

    Returns
    -------
    dict
        ``conflict`` (N,) bool: a labelled image in a group with two or more
        distinct labels; ``score`` (N,) float: the share of the other labelled
        members of its group whose label differs (0 when none); ``suggested``
        (N,) int: the label most of the other labelled members carry when it
        differs from the image's own and no other label is as common, else -1.
    """
    g, y = _check(groups, labels)
    n = len(g)
    labelled = y != UNLABELLED
    conflict, score = np.zeros(n, dtype=bool), np.zeros(n)
    suggested = np.full(n, UNLABELLED, dtype=np.int64)
    if not labelled.any():
        return {"conflict": conflict, "score": score, "suggested": suggested}
    lg, ly = g[labelled], y[labelled]
    # Count (group, label) pairs and labelled members per group.
    pairs, pair_of, pair_n = np.unique(np.stack([lg, ly], axis=1), axis=0, return_inverse=True, return_counts=True)
    pair_of = pair_of.ravel()
    group_ids, group_of, group_n = np.unique(lg, return_inverse=True, return_counts=True)
    group_of = group_of.ravel()
    distinct = np.bincount(np.searchsorted(group_ids, pairs[:, 0]), minlength=len(group_ids))
    idx = np.flatnonzero(labelled)
    others = group_n[group_of] - 1
    same_others = pair_n[pair_of] - 1
    conflict[idx] = distinct[group_of] > 1
    score[idx] = np.where(others > 0, (others - same_others) / np.maximum(others, 1), 0.0)
    # Majority label of each group: the most common pair; a tie leaves no suggestion.
    pair_group = np.searchsorted(group_ids, pairs[:, 0])
    order = np.lexsort((-pair_n, pair_group))
    first = np.r_[True, pair_group[order][1:] != pair_group[order][:-1]]
    top_pair = order[first]
    second_n = np.zeros(len(group_ids), dtype=np.int64)
    seconds = order[~first]
    np.maximum.at(second_n, pair_group[seconds], pair_n[seconds])
    majority = np.full(len(group_ids), UNLABELLED, dtype=np.int64)
    clear = pair_n[top_pair] > second_n[pair_group[top_pair]]
    majority[pair_group[top_pair][clear]] = pairs[top_pair[clear], 1]
    mine = majority[group_of]
    suggested[idx] = np.where(conflict[idx] & (mine != ly), mine, UNLABELLED)
    return {"conflict": conflict, "score": score, "suggested": suggested}


def crossing_groups(groups, values) -> np.ndarray:
    """Per image: whether its near-duplicate group spans more than one value (source, split).

    Parameters
    ----------
    groups : array_like of int, shape (N,)
    values : array_like, shape (N,)
        The attribute to compare (any hashable values); None (or -1 for
        integer codes) means unknown and is ignored.

    Returns
    -------
    ndarray of bool, shape (N,)
    """
    g = np.asarray(groups, dtype=np.int64)
    v = np.asarray(values)
    if g.shape != v.shape or g.ndim != 1:
        raise ValueError("groups and values must be 1-d arrays of equal length")
    if np.issubdtype(v.dtype, np.integer):
        codes = v.astype(np.int64)
    else:
        lookup: dict = {}
        codes = np.array([-1 if x is None else lookup.setdefault(x, len(lookup)) for x in v.tolist()], dtype=np.int64)
    known = codes >= 0
    if not known.any():
        return np.zeros(len(g), dtype=bool)
    pairs = np.unique(np.stack([g[known], codes[known]], axis=1), axis=0)
    group_ids, per_group = np.unique(pairs[:, 0], return_counts=True)
    return np.isin(g, group_ids[per_group > 1])
