"""Multi-label metrics and per-class decision thresholds. Pure numpy, no torch.

A multi-label model gives one independent (sigmoid) probability per class; a
class is predicted when its probability reaches that class's threshold. The
thresholds are chosen on the val split (`choose_thresholds`), each the one that
maximises the class's F1 there, because a rare class's probabilities sit low
under a loss that sees it seldom and 0.5 would miss most of it.

MIN_POSITIVES and the clip: a class with fewer positives than that in val
keeps DEFAULT_THRESHOLD, and every threshold stays inside THRESHOLD_CLIP, so a
val split of a handful of images cannot push a class to "always" or "never".

Measured by bench/multilabel.py on the test split against the true sets, six
cells (Fashion-MNIST and letters tiles, 10,000 images each, on a GPU; missing /
wrong tags planted at 10/2 %, 5/5 %, 20/1 % and 10/3 % look-alike), thresholds
chosen on val against 0.5: micro-F1 0.869 against 0.862 on average, macro-F1
0.876 against 0.853. Most where tags go missing (20 % missing: macro-F1 0.853
against 0.790; its sigmoids sit low) and on letters (0.955 against 0.927); 0.5
is ahead by 0.007-0.011 where the planted errors are wrong tags (5 % wrong,
and look-alike), whose val positives are partly false.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from app.training.evaluate import ECE_BINS, _compute_ece, _group_accuracy, _ratio

DEFAULT_THRESHOLD = 0.5
MIN_POSITIVES = 5
THRESHOLD_CLIP = (0.05, 0.95)


def as_targets(sets: Sequence[Sequence[int]], n_classes: int) -> np.ndarray:
    """(N, K) float32 0/1 matrix from each example's set of class indices."""
    out = np.zeros((len(sets), n_classes), dtype=np.float32)
    for row, members in enumerate(sets):
        out[row, list(members)] = 1.0
    return out


def choose_thresholds(targets: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per class, the threshold that maximises F1 on (targets, probs): midway between the lowest probability it
    accepts and the next one below. DEFAULT_THRESHOLD for a class with fewer than MIN_POSITIVES positives."""
    targets = np.asarray(targets, dtype=bool)
    probs = np.asarray(probs, dtype=np.float64)
    out = np.full(probs.shape[1], DEFAULT_THRESHOLD)
    for k in range(probs.shape[1]):
        y, p = targets[:, k], probs[:, k]
        positives = int(y.sum())
        if positives < MIN_POSITIVES:
            continue
        order = np.argsort(-p, kind="stable")
        hits = np.cumsum(y[order])
        f1 = 2 * hits / (np.arange(1, len(p) + 1) + positives)
        # Only where the next probability differs can the cut fall: ties are accepted together.
        ends = np.flatnonzero(np.append(np.diff(p[order]) != 0, True))
        best = ends[int(np.argmax(f1[ends]))]
        below = p[order][best + 1] if best + 1 < len(p) else 0.0
        out[k] = (p[order][best] + below) / 2
    return np.clip(out, *THRESHOLD_CLIP)


def average_precision(y: np.ndarray, p: np.ndarray) -> float:
    """The mean of the precision at each positive, ranked by p (as scikit-learn's, ties broken by order)."""
    positives = int(y.sum())
    if positives == 0:
        return 0.0
    order = np.argsort(-p, kind="stable")
    hits = np.cumsum(y[order])
    at = np.flatnonzero(y[order])
    return float((hits[at] / (at + 1)).mean())


def evaluate_sets(targets, probs, thresholds, *, classes: Sequence[str], sources: Sequence[str] | None = None,
                  tags: Sequence[Sequence[str]] | None = None) -> dict:
    """Multi-label metrics of sigmoid probabilities against the given sets.

    Returns
    -------
    dict
        ``multi_label``: True. ``count``: N. ``accuracy``: exact-match share
        (the predicted set is the given set). ``hamming``: share of (image,
        class) decisions right. ``micro_f1`` over every decision;
        ``macro_f1`` the mean over classes that occur in the targets or the
        predictions; ``map`` the mean average precision over classes with a
        positive. ``per_class``: {name: precision, recall, f1, support, ap,
        threshold}. ``ece``: calibration of the per-class probabilities over
        every decision (ECE_BINS bins). ``per_source`` / ``per_tag``:
        exact-match share. ``confusion``: None (sets have none).
    """
    y = np.asarray(targets, dtype=bool)
    p = np.asarray(probs, dtype=np.float64)
    t = np.asarray(thresholds, dtype=np.float64)
    if y.shape != p.shape or p.ndim != 2 or p.shape[1] != len(classes) or len(t) != len(classes):
        raise ValueError(f"targets {y.shape}, probs {p.shape} and {len(t)} thresholds for {len(classes)} classes")
    if len(y) == 0:
        raise ValueError("nothing to evaluate: no examples")
    predicted = p >= t
    tp = (predicted & y).sum(axis=0).astype(np.float64)
    support = y.sum(axis=0)
    predicted_count = predicted.sum(axis=0)
    precision = _ratio(tp, predicted_count)
    recall = _ratio(tp, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    present = (support > 0) | (predicted_count > 0)
    micro = 2 * tp.sum() / max(1, support.sum() + predicted_count.sum())
    ap = np.array([average_precision(y[:, k], p[:, k]) for k in range(len(classes))])
    exact = (predicted == y).all(axis=1)
    return {
        "multi_label": True,
        "count": int(len(y)),
        "accuracy": float(exact.mean()),
        "hamming": float((predicted == y).mean()),
        "micro_f1": float(micro),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "map": float(ap[support > 0].mean()) if (support > 0).any() else 0.0,
        "per_class": {
            name: {"precision": float(precision[k]), "recall": float(recall[k]), "f1": float(f1[k]),
                   "support": int(support[k]), "ap": float(ap[k]), "threshold": float(t[k])}
            for k, name in enumerate(classes)
        },
        "thresholds": [float(v) for v in t],
        "confusion": None,
        "ece": _compute_ece(p.ravel(), y.ravel(), ECE_BINS),
        "per_source": _group_accuracy(exact, [(s,) for s in sources]) if sources is not None else {},
        "per_tag": _group_accuracy(exact, tags, empty="untagged") if tags is not None else {},
    }


def predicted_sets(probs, thresholds) -> list[list[int]]:
    """Each row's predicted set: the classes whose probability reaches their threshold."""
    p, t = np.asarray(probs, dtype=np.float64), np.asarray(thresholds, dtype=np.float64)
    return [np.flatnonzero(row >= t).tolist() for row in p]


def margin(probs: Sequence[float], thresholds: Sequence[float]) -> float:
    """How sure the predicted set is: the smallest distance of a class's probability from its threshold."""
    p, t = np.asarray(probs, dtype=np.float64), np.asarray(thresholds, dtype=np.float64)
    return float(np.abs(p - t).min()) if len(p) else 0.0
