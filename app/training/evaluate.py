"""Classification metrics from labels and predicted probabilities. Pure numpy, no torch.

The trainer calls `evaluate` on out-of-sample predictions and on the final
model's val / test / held-out-source predictions; the web app may call it on
stored predictions. Everything returned is plain Python (JSON-ready).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ECE_BINS = 15


def evaluate(
    labels: np.ndarray,
    probs: np.ndarray,
    *,
    classes: Sequence[str],
    sources: Sequence[str] | None = None,
    tags: Sequence[Sequence[str]] | None = None,
) -> dict:
    """Accuracy, F1, confusion, calibration and breakdowns by source and difficulty tag.

    Parameters
    ----------
    labels : array of int, shape (N,)
        The given class of each example, an index into `classes`.
    probs : array of float, shape (N, K)
        Predicted class probabilities; each row sums to 1. The prediction is the argmax.
    classes : sequence of str, length K
        Class names, in column order.
    sources : sequence of str, length N, optional
        Each example's source; gives ``per_source``.
    tags : sequence of sequences of str, length N, optional
        Each example's difficulty tags; gives ``per_tag`` (an example counts
        for each of its tags) with ``"untagged"`` for examples without any.

    Returns
    -------
    dict
        ``count``: N. ``accuracy``: share of argmax predictions equal to the label.
        ``macro_f1``: mean F1 over the classes that occur in `labels` or in the
        predictions (as scikit-learn does). ``per_class``: {name: {"precision",
        "recall", "f1", "support"}} for every class (0.0 where undefined).
        ``confusion``: K x K counts, rows are the given class, columns the predicted one.
        ``ece``: expected calibration error of the top probability over 15
        equal-width bins (0 is perfectly calibrated; higher is worse).
        ``per_source`` / ``per_tag``: {name: accuracy}, empty when not given.

    Raises
    ------
    ValueError
        On empty input, mismatched lengths, or labels outside 0..K-1.
    """
    labels, probs = _check(labels, probs, classes, sources, tags)
    return _compute_metrics(labels, probs, list(classes), sources, tags)


def _check(labels, probs, classes, sources, tags) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or labels.ndim != 1 or len(labels) != len(probs):
        raise ValueError(f"labels must be (N,) and probs (N, K); got {labels.shape} and {probs.shape}")
    if len(labels) == 0:
        raise ValueError("nothing to evaluate: no examples")
    if probs.shape[1] != len(classes):
        raise ValueError(f"probs has {probs.shape[1]} columns but there are {len(classes)} classes")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= len(classes):
        raise ValueError(f"labels must be integers from 0 to {len(classes) - 1}")
    for name, seq in (("sources", sources), ("tags", tags)):
        if seq is not None and len(seq) != len(labels):
            raise ValueError(f"{name} has {len(seq)} entries for {len(labels)} examples")
    return labels.astype(np.int64), probs


def _compute_metrics(labels, probs, classes, sources, tags) -> dict:
    k = len(classes)
    predicted = probs.argmax(axis=1)
    correct = predicted == labels
    confusion = np.bincount(labels * k + predicted, minlength=k * k).reshape(k, k)
    true_positive = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)
    predicted_count = confusion.sum(axis=0)
    precision = _ratio(true_positive, predicted_count)
    recall = _ratio(true_positive, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    present = (support > 0) | (predicted_count > 0)
    return {
        "count": int(len(labels)),
        "accuracy": float(correct.mean()),
        "macro_f1": float(f1[present].mean()),
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(support[i])}
            for i, name in enumerate(classes)
        },
        "confusion": confusion.tolist(),
        "ece": _compute_ece(probs.max(axis=1), correct),
        "per_source": _group_accuracy(correct, [(s,) for s in sources]) if sources is not None else {},
        "per_tag": _group_accuracy(correct, tags, empty="untagged") if tags is not None else {},
    }


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0."""
    return np.divide(num, den, out=np.zeros(len(num)), where=den > 0)


def _compute_ece(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """Sum over bins (lo, hi] of (share of examples) * |accuracy - mean confidence|."""
    index = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    hits = np.bincount(index, weights=correct.astype(np.float64), minlength=bins)
    conf = np.bincount(index, weights=confidence, minlength=bins)
    return float(np.abs(hits - conf).sum() / len(confidence))


def _group_accuracy(correct: np.ndarray, groups: Sequence[Sequence[str]], empty: str | None = None) -> dict:
    """Accuracy per group name; an example counts once for each of its groups (or for `empty`)."""
    hits: dict[str, list[int]] = {}
    for ok, names in zip(correct.tolist(), groups):
        for name in (names or ((empty,) if empty else ())):
            h = hits.setdefault(name, [0, 0])
            h[0] += ok
            h[1] += 1
    return {name: h / n for name, (h, n) in sorted(hits.items())}
