"""Likely label errors from out-of-sample class probabilities (confident learning). Pure numpy.

Confident learning (Northcutt, Jiang & Chuang, "Confident Learning: Estimating
Uncertainty in Dataset Labels", JAIR 2021), written from the paper:

1. per-class thresholds ``t_j``: the mean predicted probability of class j
   over the examples labelled j (how sure the model usually is of j);
2. the confident joint ``C[i, j]``: examples labelled i whose probability of
   j reaches ``t_j`` (the most probable such class when several do); its
   calibrated form (rows scaled to the label counts) estimates the joint
   distribution of given and true labels, hence the noise rate of each class;
3. pruning: how many examples are label errors comes from the confident joint,
   which ones from the probabilities. ``low_self_confidence`` (the default)
   takes as many as the confident joint has off-diagonal members, lowest
   probability of the given label first; ``prune_by_noise_rate`` (the paper's)
   takes, per off-diagonal cell (i, j) of the calibrated joint, the ``C[i, j]``
   examples labelled i with the largest margin ``p_j - p_i``. On the
   Fashion-MNIST benchmark (bench/mislabels.py) the default has the higher F1
   on uniform and look-alike noise alike. An example whose most probable class
   is its given label is never an issue.

Two additions, both optional:

- ``prior``: the annotator's confidence in each label, as independent
  evidence. Each confidence level's error rate is estimated from the data (the
  share of confident-learning issues at that level in a first pass, shrunk
  towards the overall share); the given class's probability is moved by the
  level's log-odds against the overall rate (Bayes' rule on the odds), and
  confident learning runs again on the moved probabilities. A level no more
  error-prone than the rest changes nothing; the model alone still decides
  that an example it puts in its given class is not an issue.
- ``groups``: thresholds per group (the cross-validation fold whose model
  produced the probabilities), since each fold model is calibrated on its own.
  (No consistent gain on the benchmark, so the app leaves it off.)

Scores point one way throughout: a label-quality score is in [0, 1] and
**lower means more likely mislabelled**.
"""

from __future__ import annotations

import numpy as np

SCORE_METHODS = ("self_confidence", "normalized_margin")
FILTERS = ("low_self_confidence", "prune_by_noise_rate", "confident_learning")
_EPS = 1e-6
_PRIOR_STRENGTH = 50.0  # pseudo-examples pulling a confidence level's error rate towards the overall one
_PRIOR_CLIP = (1e-3, 1 - 1e-3)


def _check(labels, pred_probs, n_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(pred_probs, dtype=np.float64)
    y = np.asarray(labels)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise ValueError(f"pred_probs must have shape (N, K) with K >= 2, not {probs.shape}")
    if y.shape != (probs.shape[0],):
        raise ValueError(f"labels must have shape ({probs.shape[0]},), not {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError("labels must be class indices (integers)")
    k = probs.shape[1] if n_classes is None else n_classes
    if len(y) and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"labels must be from 0 to {k - 1}")
    if not np.isfinite(probs).all() or (probs < 0).any():
        raise ValueError("pred_probs must be finite and non-negative")
    sums = probs.sum(axis=1, keepdims=True)
    if (sums <= 0).any():
        raise ValueError("every row of pred_probs needs a positive sum")
    return y.astype(np.int64), probs / sums


def _check_prior(prior, n: int) -> np.ndarray | None:
    if prior is None:
        return None
    p = np.asarray(prior, dtype=np.float64)
    if p.shape != (n,):
        raise ValueError(f"prior must have shape ({n},), not {p.shape}")
    p = np.where(np.isnan(p), 1.0, p)  # unknown confidence: as an ordinary label
    if (p < 0).any() or (p > 1).any():
        raise ValueError("prior (annotator confidence) must be from 0 to 1")
    return p


def _check_groups(groups, n: int) -> np.ndarray | None:
    if groups is None:
        return None
    g = np.asarray(groups)
    if g.shape != (n,):
        raise ValueError(f"groups must have shape ({n},), not {g.shape}")
    return g


def confident_thresholds(labels, pred_probs, *, groups=None) -> np.ndarray:
    """Per-class thresholds: the mean probability of class j over the examples labelled j.

    Parameters
    ----------
    labels : array_like of int, shape (N,)
        Given label of each example, 0..K-1.
    pred_probs : array_like of float, shape (N, K)
        Out-of-sample class probabilities (rows are normalised).
    groups : array_like, shape (N,), optional
        When given, thresholds are computed within each group (e.g. the fold
        whose model predicted the example), falling back to the overall
        threshold for a class a group has no examples of.

    Returns
    -------
    ndarray of float, shape (K,) or (N, K)
        ``t[j]``; with ``groups``, one row of thresholds per example.
    """
    y, probs = _check(labels, pred_probs)
    g = _check_groups(groups, len(y))
    return _thresholds(y, probs, g)


def _class_means(y: np.ndarray, probs: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    k = probs.shape[1]
    counts = np.bincount(y, minlength=k).astype(np.float64)
    sums = np.zeros(k)
    np.add.at(sums, y, probs[np.arange(len(y)), y])
    return np.where(counts > 0, sums / np.maximum(counts, 1), fallback)


def _thresholds(y: np.ndarray, probs: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    overall = _class_means(y, probs, np.full(probs.shape[1], 1.0))
    if groups is None:
        return overall
    rows = np.empty_like(probs)
    for value in np.unique(groups):
        member = groups == value
        rows[member] = _class_means(y[member], probs[member], overall)
    return rows


def _round_rows(matrix: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """Round each row to integers that add up to the row's (integer) total: largest remainders first."""
    floor = np.floor(matrix)
    short = (np.rint(totals) - floor.sum(axis=1)).astype(np.int64)
    order = np.argsort(-(matrix - floor), axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(matrix.shape[1])[None, :].repeat(matrix.shape[0], 0), axis=1)
    return (floor + (ranks < short[:, None])).astype(np.int64)


def _confident_guess(probs: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each example's most probable class among those at or above their threshold, and whether it has one."""
    above = probs >= thresholds - _EPS
    has = above.any(axis=1)
    guess = np.where(above, probs, -1.0).argmax(axis=1)
    return guess, has


def _joint_counts(y: np.ndarray, probs: np.ndarray, thresholds: np.ndarray, calibrate: bool) -> np.ndarray:
    k = probs.shape[1]
    guess, has = _confident_guess(probs, thresholds)
    cj = np.bincount(y[has] * k + guess[has], minlength=k * k).reshape(k, k)
    # Every class keeps at least one example it is confidently right about.
    np.fill_diagonal(cj, np.maximum(np.diagonal(cj), 1))
    if not calibrate:
        return cj
    label_counts = np.bincount(y, minlength=k).astype(np.float64)
    scaled = cj / np.maximum(cj.sum(axis=1, keepdims=True), 1) * label_counts[:, None]
    return _round_rows(scaled, label_counts)


def confident_joint(labels, pred_probs, *, groups=None, calibrate: bool = True) -> np.ndarray:
    """Counts of (given label, confidently predicted true label) pairs.

    Parameters
    ----------
    labels : array_like of int, shape (N,)
        Given label of each example.
    pred_probs : array_like of float, shape (N, K)
        Out-of-sample class probabilities.
    groups : array_like, shape (N,), optional
        Compute thresholds per group (see `confident_thresholds`).
    calibrate : bool
        Scale each row to the number of examples with that given label (rounded
        so rows keep their totals), as the paper's calibration step.

    Returns
    -------
    ndarray of int, shape (K, K)
        ``C[i, j]``: examples labelled i that are confidently of class j.
        Off-diagonal entries estimate label errors from i's true class j.
    """
    y, probs = _check(labels, pred_probs)
    return _joint_counts(y, probs, _thresholds(y, probs, _check_groups(groups, len(y))), calibrate)


def estimate_noise(labels, pred_probs, *, groups=None) -> dict:
    """The joint distribution of given and true labels and the noise rate of each given class.

    Parameters
    ----------
    labels : array_like of int, shape (N,)
    pred_probs : array_like of float, shape (N, K)
    groups : array_like, shape (N,), optional
        Per-group thresholds (see `confident_thresholds`).

    Returns
    -------
    dict
        ``joint`` (K, K) float summing to 1: P(given = i, true = j);
        ``noise_rate`` (K,) float: P(true != i | given = i), the estimated share
        of wrong labels among the examples labelled i (0 for an unused class);
        ``noise`` float: the estimated overall share of wrong labels.
    """
    y, probs = _check(labels, pred_probs)
    cj = _joint_counts(y, probs, _thresholds(y, probs, _check_groups(groups, len(y))), True).astype(np.float64)
    total = cj.sum()
    joint = cj / total if total else cj
    rows = cj.sum(axis=1)
    off = rows - np.diagonal(cj)
    rate = np.where(rows > 0, off / np.maximum(rows, 1), 0.0)
    return {"joint": joint, "noise_rate": rate, "noise": float(off.sum() / total) if total else 0.0}


def noise_by_group(labels, pred_probs, groups) -> dict:
    """Estimated share of wrong labels within each group (a source, a class, an annotator).

    The share of a group's examples that are off-diagonal members of the
    confident joint (confidently of another class than their label, which is
    also not the model's most probable class): the same count
    `find_label_issues` flags by default. Thresholds are the whole dataset's,
    so groups are comparable.

    Parameters
    ----------
    labels : array_like of int, shape (N,)
    pred_probs : array_like of float, shape (N, K)
    groups : array_like, shape (N,)
        Any hashable group value per example.

    Returns
    -------
    dict
        group value -> {"n": examples, "noise": estimated share in [0, 1]}.
    """
    y, probs = _check(labels, pred_probs)
    g = _check_groups(groups, len(y))
    guess, has = _confident_guess(probs, _thresholds(y, probs, None))
    wrong = has & (guess != y) & (probs.argmax(axis=1) != y)
    out = {}
    for value in np.unique(g):
        member = g == value
        out[value.item() if hasattr(value, "item") else value] = {
            "n": int(member.sum()), "noise": float((member & wrong).sum() / member.sum())}
    return out


def _prune_counts(cj: np.ndarray, label_counts: np.ndarray, frac_noise: float, min_keep: int) -> np.ndarray:
    """Off-diagonal counts to prune per (given, true) cell, leaving at least `min_keep` examples per given class."""
    counts = cj.astype(np.float64) * frac_noise
    np.fill_diagonal(counts, 0)
    room = np.maximum(label_counts - min_keep, 0)
    wanted = counts.sum(axis=1)
    scale = np.where(wanted > room, room / np.maximum(wanted, 1e-12), 1.0)
    return np.floor(counts * scale[:, None] + 0.5).astype(np.int64)


def _level_error_rates(prior: np.ndarray, issues: np.ndarray) -> tuple[np.ndarray, float]:
    """Each example's estimated error rate for its confidence level (levels rounded to 0.05), shrunk to the mean."""
    overall = issues.mean() if len(issues) else 0.0
    levels = np.round(prior * 20).astype(np.int64)
    n = np.bincount(levels, minlength=21).astype(np.float64)
    hits = np.bincount(levels, weights=issues.astype(np.float64), minlength=21)
    rate = (hits + _PRIOR_STRENGTH * overall) / (n + _PRIOR_STRENGTH)
    return np.clip(rate[levels], *_PRIOR_CLIP), float(np.clip(overall, *_PRIOR_CLIP))


def apply_prior(labels, pred_probs, prior, *, issues=None) -> np.ndarray:
    """Move each given label's probability by its annotator-confidence level's log-odds of being right.

    Parameters
    ----------
    labels : array_like of int, shape (N,)
    pred_probs : array_like of float, shape (N, K)
    prior : array_like of float, shape (N,)
        Annotator confidence in each given label (0..1; NaN = unknown, as 1).
    issues : array_like of bool, shape (N,), optional
        Which examples are thought mislabelled, to estimate each level's error
        rate; by default `find_label_issues` without a prior.

    Returns
    -------
    ndarray of float, shape (N, K)
        Rows still sum to 1; the other classes keep their proportions. A level
        whose estimated error rate equals the overall rate is left unchanged.
    """
    y, probs = _check(labels, pred_probs)
    p = _check_prior(prior, len(y))
    if issues is None:
        issues = _find(y, probs, None, None, "low_self_confidence", 1.0, 1)
    return _apply_prior(y, probs, p, np.asarray(issues, dtype=bool))


def _apply_prior(y: np.ndarray, probs: np.ndarray, prior: np.ndarray, issues: np.ndarray) -> np.ndarray:
    rate, overall = _level_error_rates(prior, issues)
    shift = np.log((1 - rate) / rate) - np.log((1 - overall) / overall)
    rows = np.arange(len(y))
    given = np.clip(probs[rows, y], 1e-9, 1 - 1e-9)
    moved = 1 / (1 + np.exp(-(np.log(given / (1 - given)) + shift)))
    out = probs * ((1 - moved) / (1 - given))[:, None]
    out[rows, y] = moved
    return out


def _leave_per_class(issues: np.ndarray, y: np.ndarray, probs: np.ndarray, min_keep: int) -> np.ndarray:
    """Unflag the most self-confident issues of a class that would keep fewer than `min_keep` examples."""
    counts = np.bincount(y, minlength=probs.shape[1])
    flagged = np.bincount(y[issues], minlength=probs.shape[1])
    for i in np.flatnonzero(flagged > np.maximum(counts - min_keep, 0)):
        members = np.flatnonzero(issues & (y == i))
        extra = flagged[i] - max(counts[i] - min_keep, 0)
        issues[members[np.argsort(-probs[members, i], kind="stable")[:extra]]] = False
    return issues


def _find(y, probs, prior, groups, method: str, frac_noise: float, min_keep: int) -> np.ndarray:
    # The model agrees with the given label: not an issue, whatever the counts (or the prior) say.
    disagrees = probs.argmax(axis=1) != y
    if prior is not None:
        first = _find(y, probs, None, groups, method, frac_noise, min_keep)
        probs = _apply_prior(y, probs, prior, first)
    k = probs.shape[1]
    thresholds = _thresholds(y, probs, groups)
    if method == "confident_learning":
        guess, has = _confident_guess(probs, thresholds)
        issues = has & (guess != y)
    elif method == "low_self_confidence":
        guess, has = _confident_guess(probs, thresholds)
        count = int(np.floor((has & (guess != y) & disagrees).sum() * frac_noise + 0.5))
        candidates = np.flatnonzero(disagrees)
        lowest = candidates[np.argsort(probs[candidates, y[candidates]], kind="stable")[:count]]
        issues = np.zeros(len(y), dtype=bool)
        issues[lowest] = True
        issues = _leave_per_class(issues, y, probs, min_keep)
    else:
        cj = _joint_counts(y, probs, thresholds, True)
        prune = _prune_counts(cj, np.bincount(y, minlength=k), frac_noise, min_keep)
        issues = np.zeros(len(y), dtype=bool)
        for i, j in zip(*np.nonzero(prune)):
            members = np.flatnonzero(y == i)
            n = min(int(prune[i, j]), len(members))
            margin = probs[members, j] - probs[members, i]
            top = members[np.argpartition(-margin, n - 1)[:n]] if n < len(members) else members
            issues[top] = True
    return issues & disagrees


def find_label_issues(labels, pred_probs, *, prior=None, groups=None, method: str = "low_self_confidence",
                      frac_noise: float = 1.0, min_examples_per_class: int = 1) -> np.ndarray:
    """Which examples are likely mislabelled.

    Parameters
    ----------
    labels : array_like of int, shape (N,)
        Given label of each example, 0..K-1.
    pred_probs : array_like of float, shape (N, K)
        Out-of-sample class probabilities (from a model that never trained on
        the example, e.g. k-fold cross-validation).
    prior : array_like of float, shape (N,), optional
        Annotator confidence in each label: confident learning runs on the
        probabilities `apply_prior` moves with it.
    groups : array_like, shape (N,), optional
        Per-group thresholds, e.g. the fold whose model predicted the example.
    method : {"low_self_confidence", "prune_by_noise_rate", "confident_learning"}
        ``low_self_confidence`` (default): as many examples as the confident
        joint has off-diagonal members (labelled i, confidently j), those with
        the lowest probability of their given label. ``prune_by_noise_rate``:
        per off-diagonal cell (i, j) of the calibrated confident joint, the
        ``C[i, j]`` examples labelled i with the largest ``p_j - p_i``.
        ``confident_learning``: the off-diagonal members themselves.
    frac_noise : float
        Share (0..1] of the estimated errors to return; 1 returns them all.
    min_examples_per_class : int
        Never flag so many that fewer examples than this keep a given label.

    Returns
    -------
    ndarray of bool, shape (N,)
        True for a likely label error. An example whose most probable class is
        its given label is never one.
    """
    if method not in FILTERS:
        raise ValueError(f"method must be one of {', '.join(FILTERS)}, not {method!r}")
    if not 0 < frac_noise <= 1:
        raise ValueError("frac_noise must be in (0, 1]")
    y, probs = _check(labels, pred_probs)
    if len(y) == 0:
        return np.zeros(0, dtype=bool)
    return _find(y, probs, _check_prior(prior, len(y)), _check_groups(groups, len(y)), method, frac_noise,
                 max(0, int(min_examples_per_class)))


def label_quality_scores(labels, pred_probs, *, method: str = "self_confidence", prior=None,
                         adjust: bool = False) -> np.ndarray:
    """A score per example for how likely its given label is right.

    Parameters
    ----------
    labels : array_like of int, shape (N,)
    pred_probs : array_like of float, shape (N, K)
    method : {"normalized_margin", "self_confidence"}
        ``self_confidence``: the probability of the given class.
        ``normalized_margin``: ``(p_given - max_{j != given} p_j + 1) / 2``.
    prior : array_like of float, shape (N,), optional
        Annotator confidence; probabilities are first moved by `apply_prior`.
    adjust : bool
        Subtract the per-class thresholds first (classes the model is
        generally unsure of are not penalised for it), as confident learning
        does; rows are shifted non-negative and renormalised.

    Returns
    -------
    ndarray of float, shape (N,)
        In [0, 1]; **lower means more likely mislabelled**.
    """
    if method not in SCORE_METHODS:
        raise ValueError(f"method must be one of {', '.join(SCORE_METHODS)}, not {method!r}")
    y, probs = _check(labels, pred_probs)
    if len(y) == 0:
        return np.zeros(0)
    p = _check_prior(prior, len(y))
    if p is not None:
        probs = _apply_prior(y, probs, p, _find(y, probs, None, None, "low_self_confidence", 1.0, 1))
    if adjust:
        probs = probs - _thresholds(y, probs, None)
        probs = probs - probs.min(axis=1, keepdims=True)
        probs = probs / np.maximum(probs.sum(axis=1, keepdims=True), 1e-12)
    rows = np.arange(len(y))
    given = probs[rows, y]
    if method == "self_confidence":
        return given
    others = probs.copy()
    others[rows, y] = -np.inf
    return (given - others.max(axis=1) + 1) / 2


def suggested_classes(labels, pred_probs) -> np.ndarray:
    """The most probable class other than the given one, per example.

    Parameters
    ----------
    labels : array_like of int, shape (N,)
    pred_probs : array_like of float, shape (N, K)

    Returns
    -------
    ndarray of int, shape (N,)
    """
    y, probs = _check(labels, pred_probs)
    others = probs.copy()
    others[np.arange(len(y)), y] = -np.inf
    return others.argmax(axis=1)
