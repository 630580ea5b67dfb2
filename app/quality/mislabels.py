"""Likely label errors from out-of-sample class probabilities and neighbours' labels. Pure numpy.

The default detector (`detect`, `find_label_issues(method="posterior")`)
asks, per example, how probable it is that its given label is wrong, under a
model of the noise fitted to this dataset's own labels, and flags as many as
that noise bears out:

1. **Evidence.** The out-of-sample class probabilities (a model that never
   saw the label), times the class distribution of the image's nearest
   out-of-sample neighbours' labels to the power NEIGHBOUR_WEIGHT (a product
   of experts, `combine_evidence`): on look-alike noise the model often
   learns a swapped pair's wrong label, while the images around a mislabelled
   one still mostly carry its true class. Then the annotator's confidence
   (`apply_prior`): each confidence level's error rate, estimated from the
   data and shrunk towards the overall rate, moves the given class's odds.
2. **A noise model fitted to the given labels** (`fit_noise_model`). The
   evidence, tempered (``p ** (1 / t)``, renormalised), is each example's
   prior over its true class; the given label came from the true class through
   a channel ``T[i, j] = P(given = i | true = j)``. For each temperature, EM
   (Dawid & Skene 1979, with the tempered evidence as the class prior; started
   from confident learning's calibrated joint) finds the channel; the
   temperature is the likelihood's peak. Fitting the temperature is what
   makes the estimate hold for a model less sure than it should be (letters:
   t near 0.6) and for one surer (t above 1) alike; a constant t = 1 leaves the
   letters' noise estimated at 0.08 for 0.10 and F1 4 points lower.
3. **Posterior and cut.** ``P(true = j | evidence, given i) ~ T[i, j] *
   evidence_j``; ``wrong = 1 - P(true = i | ...)``. The flags are the m most
   probably wrong, m maximising the expected F1 (`expected_f1_cut`): the cut
   follows the estimated noise, not a constant. An example that the model
   and neighbours together put in its given class is never flagged, whatever
   the counts or the annotator's doubt. The review order (a flag's score) is
   the mean of ``wrong`` and one minus the given class's probability under
   the evidence (step 1): ``wrong`` alone ties at 1.0 for every clear error
   and the evidence alone misorders look-alike noise. On the first 15 cells,
   precision of the first k flags (k = the true number of errors) 0.899 in
   this order, 0.895 by ``wrong``, 0.888 by the evidence; of the first 50
   flags 99.3 % were real errors in this order.
4. **Estimates** (`noise_structure`): the mean of ``wrong`` over all
   examples, each class, each source. Sums of probabilities, so the parts add
   up to the whole and an unsure case counts by how unsure it is.

Evidence behind the defaults: bench/matrix.py, two real datasets
(Fashion-MNIST; 20 capital letters rendered in 82 Debian fonts) x four noise
kinds (uniform; look-alike pairs swapped; one source at 4x the others' rate;
a rare class) x 5 / 10 / 20 %, 3,000 images per cell, each through the real
import, snapshot and 5-fold train job; cleanlab's `find_label_issues` with
its defaults on the same probabilities. All 24 cells: mean F1 0.905 against
cleanlab's 0.796, above it in every cell (closest: letters lookalike 10 %,
0.968 against 0.942); without the annotator's confidence, which cleanlab
never sees, 0.888 and still above in every cell. Precision of the first k
flags 0.917 against 0.895. Estimated noise off by 0.007 on average; on the
10 % cells by at most 0.003 on letters and 0.027 on Fashion-MNIST, whose
most confusable class (shirt) reads up to 12 points high: the model's own
confusion there looks like noise. Out-of-sample accuracy: Fashion-MNIST
0.85-0.87, letters 0.95-0.98.

NEIGHBOUR_WEIGHT and NEIGHBOUR_SMOOTHING: over smoothing {0.5, 1, 2} x weight
{0, 0.3, 0.5, 0.7, 1}, the 16 cells at 10 and 20 % had a mean F1 of 0.907-0.918
and every combination stayed above cleanlab in every cell; (1, 0.5) is in the
middle of that plateau (0.918). Without neighbours (weight 0) it is 0.915, and
the closest cell to cleanlab is 0.011 above it instead of 0.026: the
neighbours matter most where the model is weakest (on the first 15 cells,
built with an older training whose letters models were 4 points less
accurate: 0.884 without, 0.892 with). Tried and left out: averaging a fold's
predictions over its last 3 epochs (out-of-sample accuracy 0.885 vs 0.887 on
Fashion-MNIST, 0.989 vs 0.989 on letters); per-fold thresholds (within
+-0.005 F1); a channel per source (the noisy source's estimate 0.165 -> 0.178
for 0.182, F1 up to 0.009 lower on Fashion-MNIST); a fixed temperature of 1
(above).

Confident learning (Northcutt, Jiang & Chuang, JAIR 2021), kept as the other
`FILTERS` and as the starting point of EM: per-class thresholds ``t_j`` (the
mean probability of j over the examples labelled j); the confident joint
``C[i, j]`` (examples labelled i whose probability of j reaches ``t_j``),
calibrated to the label counts; ``low_self_confidence`` flags as many as the
joint has off-diagonal members, lowest given-class probability first;
``prune_by_noise_rate`` (the paper's) takes per cell (i, j) the ``C[i, j]``
examples with the largest ``p_j - p_i``.

Scores point one way throughout: a label-quality score is in [0, 1] and
**lower means more likely mislabelled**; ``wrong`` is in [0, 1] and higher
means more likely mislabelled.
"""

from __future__ import annotations

import numpy as np

SCORE_METHODS = ("self_confidence", "normalized_margin")
FILTERS = ("posterior", "low_self_confidence", "prune_by_noise_rate", "confident_learning")
NEIGHBOUR_WEIGHT = 0.5  # beta: the neighbours' vote enters as (their label distribution) ** beta
NEIGHBOUR_SMOOTHING = 1.0  # alpha: pseudo-neighbours per class, spread as the labels are
TEMPERATURES = tuple(float(t) for t in np.exp(np.linspace(np.log(0.2), np.log(5.0), 25)))
FIT_ROWS = 20_000  # the temperature is chosen on this many examples at most
MAX_NOISE = 0.5  # above this estimated share of wrong labels, the evidence is taken to carry nothing
EM_STEPS = 50
EM_TOLERANCE = 1e-6  # stop when the log-likelihood gains less than this per example
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


def noise_by_group(labels, pred_probs, groups, *, prior=None, neighbours=None) -> dict:
    """Estimated share of wrong labels within each group (a source, a class, an annotator).

    The mean probability of being wrong (`true_class_posterior`) over the
    group's examples: a sum of probabilities, so it counts the unsure cases
    by how unsure they are instead of all or nothing, and the groups add up
    to the overall estimate.

    Parameters
    ----------
    labels : array_like of int, shape (N,)
    pred_probs : array_like of float, shape (N, K)
    groups : array_like, shape (N,)
        Any hashable group value per example.
    prior, neighbours : optional
        As for `true_class_posterior`.

    Returns
    -------
    dict
        group value -> {"n": examples, "noise": estimated share in [0, 1]}.
    """
    y, probs = _check(labels, pred_probs)
    g = _check_groups(groups, len(y))
    wrong = 1.0 - true_class_posterior(y, probs, prior=prior, neighbours=neighbours)[np.arange(len(y)), y]
    return _group_means(wrong, g)


def _group_means(values: np.ndarray, groups: np.ndarray) -> dict:
    out = {}
    for value in np.unique(groups):
        member = groups == value
        out[value.item() if hasattr(value, "item") else value] = {
            "n": int(member.sum()), "noise": float(values[member].mean())}
    return out


def noise_structure(labels, pred_probs, *, prior=None, neighbours=None, groups: dict | None = None,
                    posterior=None) -> dict:
    """Everything the quality page says about noise, from one posterior.

    Parameters
    ----------
    labels : array_like of int, shape (N,)
    pred_probs : array_like of float, shape (N, K)
    prior, neighbours : optional
        As for `true_class_posterior`.
    groups : dict of name -> array_like (N,), optional
        Further groupings to estimate noise within (e.g. {"source": ...}).
    posterior : array_like (N, K), optional
        `true_class_posterior` (or `detect`'s) already computed.

    Returns
    -------
    dict
        ``wrong`` (N,) probability each label is wrong; ``noise`` the
        estimated overall share of wrong labels (their mean); ``informative``
        whether the evidence can tell at all (`informative`); ``joint`` (K, K)
        expected counts of (given i, true j); ``per_class`` and one entry per
        `groups` key as `noise_by_group` returns them.
    """
    y, probs = _check(labels, pred_probs)
    post = true_class_posterior(y, probs, prior=prior, neighbours=neighbours) if posterior is None else posterior
    wrong = 1.0 - post[np.arange(len(y)), y]
    joint = np.zeros((probs.shape[1], probs.shape[1]))
    np.add.at(joint, y, post)
    out = {"wrong": wrong, "noise": float(wrong.mean()) if len(y) else 0.0, "joint": joint,
           "per_class": _group_means(wrong, y), "informative": informative(wrong)}
    for name, values in (groups or {}).items():
        out[name] = _group_means(wrong, _check_groups(values, len(y)))
    return out


def _prune_counts(cj: np.ndarray, label_counts: np.ndarray, frac_noise: float, min_keep: int) -> np.ndarray:
    """Off-diagonal counts to prune per (given, true) cell, leaving at least `min_keep` examples per given class."""
    counts = cj.astype(np.float64) * frac_noise
    np.fill_diagonal(counts, 0)
    room = np.maximum(label_counts - min_keep, 0)
    wanted = counts.sum(axis=1)
    scale = np.where(wanted > room, room / np.maximum(wanted, 1e-12), 1.0)
    return np.floor(counts * scale[:, None] + 0.5).astype(np.int64)


def neighbour_distribution(labels, neighbours, n_classes: int | None = None, *,
                           smoothing: float = NEIGHBOUR_SMOOTHING) -> np.ndarray:
    """Each example's neighbours' labels as a smoothed class distribution.

    Parameters
    ----------
    labels : array_like of int, shape (N,)
        Given label of each example.
    neighbours : array_like of int, shape (N, M)
        Row indices (into `labels`) of each example's nearest neighbours in an
        out-of-sample embedding space, -1 for none. An example is never its own
        neighbour.
    n_classes : int, optional
        K; by default ``labels.max() + 1``.
    smoothing : float
        ``smoothing * K`` pseudo-neighbours spread as the given labels are
        (so a class nobody near carries keeps a little weight, and an example
        with few neighbours leans on the overall label shares). An example
        with no neighbours at all gets the uniform distribution: no evidence.

    Returns
    -------
    ndarray of float, shape (N, K)
        Rows sum to 1.
    """
    y = np.asarray(labels, dtype=np.int64)
    nb = np.asarray(neighbours, dtype=np.int64)
    if nb.ndim != 2 or len(nb) != len(y):
        raise ValueError(f"neighbours must have shape ({len(y)}, M), not {nb.shape}")
    if (nb >= len(y)).any():
        raise ValueError(f"neighbours must be row indices below {len(y)} (or -1 for none)")
    k = int(n_classes if n_classes is not None else (y.max() + 1 if len(y) else 1))
    valid = nb >= 0
    counts = np.zeros((len(y), k))
    rows = np.broadcast_to(np.arange(len(y))[:, None], nb.shape)
    np.add.at(counts, (rows[valid], y[nb[valid]]), 1.0)
    shares = np.bincount(y, minlength=k) / max(1, len(y))
    pseudo = smoothing * k
    out = (counts + pseudo * shares) / (valid.sum(axis=1, keepdims=True) + pseudo)
    out[~valid.any(axis=1)] = 1.0 / k  # no neighbours: no evidence either way
    return out


def combine_evidence(pred_probs, neighbour_probs, *, weight: float = NEIGHBOUR_WEIGHT) -> np.ndarray:
    """The model's probabilities times the neighbours' distribution to the power `weight`, renormalised
    (a product of experts: each must agree for a class to stay probable)."""
    combined = np.asarray(pred_probs, dtype=np.float64) * np.asarray(neighbour_probs, dtype=np.float64) ** weight
    return combined / np.maximum(combined.sum(axis=1, keepdims=True), 1e-300)


def _temper(probs: np.ndarray, temperature: float) -> np.ndarray:
    logits = np.log(np.clip(probs, 1e-12, None)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(axis=1, keepdims=True)


def _channel(y: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, float]:
    """The noise channel T[i, j] = P(given = i | true = j) that makes the given labels most likely, by EM from the
    calibrated confident joint; and the log-likelihood of the given labels under it. `y` must be sorted."""
    k = probs.shape[1]
    cj = _joint_counts(y, probs, _thresholds(y, probs, None), True).astype(np.float64)
    channel = cj / np.maximum(cj.sum(axis=0, keepdims=True), 1)
    present = np.flatnonzero(np.bincount(y, minlength=k))
    starts = np.searchsorted(y, present)  # each given class's rows are one run
    previous = -np.inf
    for _ in range(EM_STEPS):
        weighted = channel[y] * probs
        likely = np.maximum(weighted.sum(axis=1, keepdims=True), 1e-300)
        loglik = float(np.log(likely).sum())
        joint = np.zeros((k, k))
        joint[present] = np.add.reduceat(weighted / likely, starts, axis=0)
        channel = joint / np.maximum(joint.sum(axis=0, keepdims=True), 1e-12)
        if loglik - previous < EM_TOLERANCE * len(y):
            break
        previous = loglik
    return channel, float(np.log(np.maximum((channel[y] * probs).sum(axis=1), 1e-300)).sum())


def fit_noise_model(labels, pred_probs) -> dict:
    """The temperature and noise channel under which the given labels are most likely.

    The model's probabilities are taken as the true class's, tempered
    (``p ** (1 / t)``, renormalised) so they are as sure as the data bear out;
    each given label came from the true class through the channel ``T[i, j]
    = P(given = i | true = j)``. For each temperature on a grid, EM (Dawid &
    Skene's, with the tempered probabilities as each example's prior over
    true classes) finds the channel; the pair with the highest likelihood of
    the given labels wins. The temperature is chosen on at most
    `FIT_ROWS` examples (seeded), the channel then on all of them.

    Returns
    -------
    dict
        ``temperature`` float; ``channel`` (K, K) float, columns sum to 1.
    """
    y, probs = _check(labels, pred_probs)
    return _noise_model(y, probs)


def _noise_model(y: np.ndarray, probs: np.ndarray) -> dict:
    order = np.argsort(y, kind="stable")
    if len(y) > FIT_ROWS:
        order = np.sort(np.random.default_rng(0).choice(len(y), FIT_ROWS, replace=False))
        order = order[np.argsort(y[order], kind="stable")]
    ys, ps = y[order], probs[order]
    # The likelihood is single-peaked in log t here: a coarse grid, then the neighbourhood of its best.
    score = {}

    def loglik(i: int) -> float:
        if i not in score:
            score[i] = _channel(ys, _temper(ps, TEMPERATURES[i]))[1]
        return score[i]

    best = max(range(0, len(TEMPERATURES), 4), key=loglik)
    best = max(range(max(0, best - 3), min(len(TEMPERATURES), best + 4)), key=loglik)
    temperature = TEMPERATURES[best]
    if 0 < best < len(TEMPERATURES) - 1:
        # The estimate moves fast with t (a point of noise per few % of t): the peak of the parabola through the
        # best grid point and its two neighbours, on log t, rather than the grid point itself.
        low, mid, high = loglik(best - 1), loglik(best), loglik(best + 1)
        curve = low - 2 * mid + high
        if curve < 0:
            step = np.log(TEMPERATURES[best + 1] / TEMPERATURES[best])
            temperature = float(TEMPERATURES[best] * np.exp(np.clip(0.5 * (low - high) / curve, -1, 1) * step))
    order = np.argsort(y, kind="stable")
    channel, _ = _channel(y[order], _temper(probs[order], temperature))
    return {"temperature": temperature, "channel": channel}


def _posterior(y: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """P(true = j | evidence, given = y) per example, under the fitted noise model."""
    model = _noise_model(y, probs)
    weighted = model["channel"][y] * _temper(probs, model["temperature"])
    return weighted / np.maximum(weighted.sum(axis=1, keepdims=True), 1e-300)


def _evidence(y, probs, prior, neighbours) -> tuple[np.ndarray, np.ndarray]:
    """(the model's probabilities combined with the neighbours' labels, the same moved by the annotator prior)."""
    if neighbours is not None:
        probs = combine_evidence(probs, neighbour_distribution(y, neighbours, probs.shape[1]))
    if prior is None:
        return probs, probs
    first = 1.0 - _posterior(y, probs)[np.arange(len(y)), y]
    return probs, _apply_prior(y, probs, prior, first)


def true_class_posterior(labels, pred_probs, *, prior=None, neighbours=None) -> np.ndarray:
    """How probable each class is as an example's true class, given all the evidence and its given label.

    Parameters
    ----------
    labels : array_like of int, shape (N,)
    pred_probs : array_like of float, shape (N, K)
        Out-of-sample class probabilities.
    prior : array_like of float, shape (N,), optional
        Annotator confidence (see `apply_prior`).
    neighbours : array_like of int, shape (N, M), optional
        Out-of-sample nearest neighbours (see `neighbour_distribution`).

    Returns
    -------
    ndarray of float, shape (N, K)
        Rows sum to 1. ``1 - post[n, labels[n]]`` is the probability that
        example n's label is wrong.
    """
    y, probs = _check(labels, pred_probs)
    if len(y) == 0:
        return probs
    return _posterior(y, _evidence(y, probs, _check_prior(prior, len(y)), neighbours)[1])


def expected_f1_cut(error_prob) -> np.ndarray:
    """The examples to flag: the m most probably wrong, m maximising the expected F1 of the flags.

    With ``w`` the probabilities of being wrong, sorted descending, the
    expected F1 of flagging the first m is about ``2 * sum(w[:m]) / (m + sum(w))``
    (Lipton et al., "Optimal thresholding of classifiers to maximize F1", 2014):
    the cut follows the estimated noise, not a constant share or threshold.
    """
    w = np.asarray(error_prob, dtype=np.float64)
    flagged = np.zeros(len(w), dtype=bool)
    if not len(w) or w.sum() <= 0:
        return flagged
    order = np.argsort(-w, kind="stable")
    expected = 2 * np.cumsum(w[order]) / (np.arange(1, len(w) + 1) + w.sum())
    flagged[order[:int(np.argmax(expected)) + 1]] = True
    return flagged & (w > 0)


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
    issues : array_like of bool or float, shape (N,), optional
        Which examples are thought mislabelled (or how probably), to estimate
        each level's error rate; by default each one's probability of being
        wrong without the prior (`true_class_posterior`).

    Returns
    -------
    ndarray of float, shape (N, K)
        Rows still sum to 1; the other classes keep their proportions. A level
        whose estimated error rate equals the overall rate is left unchanged.
    """
    y, probs = _check(labels, pred_probs)
    p = _check_prior(prior, len(y))
    if issues is None:
        issues = 1.0 - _posterior(y, probs)[np.arange(len(y)), y]
    return _apply_prior(y, probs, p, np.asarray(issues, dtype=np.float64))


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


def _find(y, probs, prior, groups, method: str, frac_noise: float, min_keep: int,
          neighbours=None) -> np.ndarray:
    if method == "posterior":
        return _detect(y, probs, prior, neighbours, frac_noise, min_keep)["issues"]
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


def _detect(y, probs, prior, neighbours, frac_noise: float = 1.0, min_keep: int = 1) -> dict:
    evidence, moved = _evidence(y, probs, prior, neighbours)
    post = _posterior(y, moved)
    rows = np.arange(len(y))
    wrong = 1.0 - post[rows, y]
    issues = expected_f1_cut(wrong)
    if frac_noise < 1:
        keep = np.flatnonzero(issues)
        keep = keep[np.argsort(-wrong[keep], kind="stable")[:int(np.floor(len(keep) * frac_noise + 0.5))]]
        issues = np.zeros(len(y), dtype=bool)
        issues[keep] = True
    # The model and the neighbours put the given label first: not an issue, whatever the counts (or the
    # annotator's doubt) say.
    # (Strictly: a tie, e.g. a model that learnt nothing, is no evidence against the label.)
    issues = _leave_per_class(issues, y, post, min_keep) & (evidence[rows, y] < evidence.max(axis=1) - _EPS)
    if not informative(wrong):
        issues[:] = False
    quality = moved[rows, y]
    # The review order: the probability of being wrong, evened with how little the evidence backs the label
    # (`wrong` alone ties at 1.0 for every clear error, and the evidence alone misorders look-alike noise).
    return {"issues": issues, "quality": quality, "wrong": wrong, "posterior": post,
            "score": (wrong + 1.0 - quality) / 2}


def informative(wrong) -> bool:
    """Whether the evidence can tell right labels from wrong ones: it must find most labels right.

    Out-of-sample probabilities that carry nothing (a model that learnt
    nothing, or probabilities of another task) make the given labels look
    independent of the evidence, which the noise model can only explain as
    most labels being wrong. Confident learning rests on the same assumption
    (each class's labels mostly right); beyond it nothing is flagged.
    """
    w = np.asarray(wrong, dtype=np.float64)
    return bool(len(w) == 0 or w.mean() <= MAX_NOISE)


def detect(labels, pred_probs, *, prior=None, neighbours=None) -> dict:
    """The default detection in one pass: what `find_label_issues`, `label_quality_scores` and
    `noise_structure` return by default, with the noise model fitted once.

    Returns
    -------
    dict
        ``issues`` (N,) bool, as `find_label_issues`; ``quality`` (N,) as
        `label_quality_scores` (self_confidence, lower = more likely wrong);
        ``wrong`` (N,) the probability that each
        label is wrong; ``score`` (N,) the review order, higher first: the
        mean of ``wrong`` and ``1 - quality``; ``posterior`` (N, K) as
        `true_class_posterior`.
    """
    y, probs = _check(labels, pred_probs)
    if len(y) == 0:
        return {"issues": np.zeros(0, dtype=bool), "quality": np.zeros(0), "wrong": np.zeros(0), "posterior": probs}
    return _detect(y, probs, _check_prior(prior, len(y)), neighbours)


def find_label_issues(labels, pred_probs, *, prior=None, groups=None, neighbours=None, method: str = "posterior",
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
        Per-group thresholds, e.g. the fold whose model predicted the example
        (not used by ``posterior``).
    neighbours : array_like of int, shape (N, M), optional
        Each example's out-of-sample nearest neighbours (row indices, -1 for
        none); their labels are evidence too (``posterior`` only).
    method : {"posterior", "low_self_confidence", "prune_by_noise_rate", "confident_learning"}
        ``posterior`` (default): each example's probability of being wrong
        (`true_class_posterior`), flagged by `expected_f1_cut`; an example
        whose most probable true class is its given one is never flagged.
        ``low_self_confidence``: as many examples as the confident
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
                 max(0, int(min_examples_per_class)), neighbours)


def label_quality_scores(labels, pred_probs, *, method: str = "self_confidence", prior=None, neighbours=None,
                         adjust: bool = False) -> np.ndarray:
    """A score per example for how likely its given label is right.

    Parameters
    ----------
    labels : array_like of int, shape (N,)
    pred_probs : array_like of float, shape (N, K)
    method : {"self_confidence", "normalized_margin"}
        ``self_confidence``: the probability of the given class.
        ``normalized_margin``: ``(p_given - max_{j != given} p_j + 1) / 2``.
    prior : array_like of float, shape (N,), optional
        Annotator confidence; probabilities are first moved by `apply_prior`.
    neighbours : array_like of int, shape (N, M), optional
        Out-of-sample neighbours: the probabilities are first combined with
        their labels (`combine_evidence`).
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
    probs = _evidence(y, probs, _check_prior(prior, len(y)), neighbours)[1]
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
