"""Likely label errors in sets of classes (multi-label), per (image, class). Pure numpy.

Each class is its own yes/no question: the image's given bit (the class is in
its set or not) against the out-of-sample sigmoid probability that it shows
the class. Per class, a noise model fitted to the given bits (`fit_class`)
turns the probability and the bit into the probability that the bit is wrong:
a *missing* tag (given 0, the class is there) or a *wrong* tag (given 1, it is
not).

The model, per class: the true bit is 1 with probability ``sigmoid(a * logit(p)
+ b)`` (the model's probability, recalibrated: a sigmoid trained under a loss
that seldom sees a class is unsure of it in a way a temperature alone does not
mend), and the given bit comes from the true one through a channel with a
missing rate ``m = P(given 0 | true 1)`` and a wrong rate ``w = P(given 1 |
true 0)``. EM finds (a, b, m, w) that make the given bits most likely (the
E-step's posterior of the true bit; the M-step's rates in closed form and a
weighted logistic regression for a and b). Fitting per class lets a class that
annotators forget (m high) differ from one they over-tag (w high). The
single-label detector's temperature-only channel (app.quality.mislabels), used
per class, was 0.03 F1 lower on the bench below, with the offset b what it
lacked.

The flags are the pairs most probably wrong, as many as maximise the expected
F1 over all (image, class) pairs (`mislabels.expected_f1_cut`), except where
the model's probability agrees with the given bit (on the same side of
AGREES_AT): as for single labels, the evidence must be against the label for
it to be flagged. One half, "more likely than not", rather than the class's
decision threshold: a threshold chosen for F1 sits low for a rare class, and
a model unsure of it made every given 0 above it a candidate. On the nine
cells below the F1 per pair was 0.615 with 0.5 against 0.609 with the
thresholds (the weak letters model 0.494 against 0.448; per image 0.739
against 0.750). Review order: the mean of ``wrong`` and how little the
probability backs the given bit.

Where the fitted model explains errors away. The recalibration that makes
the fit hold on uniform noise also lets it read systematic errors as the
model's own uncertainty: wrong tags put on look-alikes of a class the image
shows (a careless annotator's mistake) get moderate probabilities, since the
model learns part of them, and the fit then puts the wrong rate near 0 (on
the look-alike cells it flagged 14 wrong tags of 2,215). Confident learning
counts them without a model of calibration. So per class and kind, when
confident learning's count (prune by noise rate, `mislabels.find_label_issues`)
is more than EXPLAINED_AWAY times the flags, its count of the most probably
wrong pairs is flagged instead. Over the ratios 2, 3, 4, 6 and 10 the mean F1
on the nine cells below was 0.600, 0.602, 0.605, 0.615 and 0.616; 6 is where it
levels off.

Evidence: bench/multilabel.py, nine cells: Fashion-MNIST and rendered-letters
tiles (2x2, 0-4 classes an image) through the real trainer; 10,000 images on
a GPU with missing / wrong tags planted at 10/2 %, 5/5 %, 20/1 % and 10/3 %
look-alike (Fashion-MNIST), 10/2 % and 10/3 % look-alike (letters); and 3,000
images on 2 CPU cores (weaker models, out-of-sample micro-F1 0.56-0.73) at
10/2 % (both datasets) and 10/3 % look-alike (letters). Against cleanlab 2.9's
`find_multilabel_issues_per_class` (defaults) on the same probabilities, F1
per (image, class): 0.615 against 0.590 on average, above it in 7 of 9 cells
(Fashion-MNIST 10/2 % 0.692 against 0.647, 5/5 % 0.724 / 0.672, 20/1 % 0.696 /
0.641, look-alike 0.633 / 0.593; letters 0.937 / 0.934; on 2 cores 0.595 /
0.552 and 0.494 / 0.487), below in two: letters look-alike 0.484 / 0.505 and,
by 0.001, its weak-model cell 0.278 / 0.279. Per image (any flag, against
cleanlab's `find_label_issues`): 0.739 against 0.733, above in 6 of 9. The fit
alone, without the recount: 0.585, with the look-alike cells at 0.464, 0.353
and 0.167.
"""

from __future__ import annotations

import numpy as np

from app.quality.mislabels import expected_f1_cut, find_label_issues, informative

MISSING, WRONG = "missing", "wrong"
AGREES_AT = 0.5  # a pair is a candidate only where the probability is on the other side of this from its bit
FIT_ROWS = 20_000  # each class's model is fitted on this many images at most (seeded), then applied to all
EM_STEPS = 200
EM_TOLERANCE = 1e-7  # stop when the log-likelihood gains less than this per image
RATE_BOUNDS = (1e-4, 0.5)  # a channel rate above one half would mean the tags mean their opposite
SLOPE_BOUNDS = (0.05, 20.0)
MIN_SLOPE = 0.2  # a recalibration flatter than this: the model's probability barely moves the odds of the class
# When confident learning counts this many times more errors of a kind in a class than the fitted model flags,
# the fit has explained systematic errors away as the model's own uncertainty: the count comes from confident
# learning instead (see the module).
EXPLAINED_AWAY = 6.0


def fit_class(given, probs) -> dict:
    """One class's noise model (see the module): {"a", "b", "missing", "wrong"} by EM on the given bits."""
    g = np.asarray(given, dtype=np.float64)
    logit = _logit(probs)
    if len(g) > FIT_ROWS:
        rows = np.random.default_rng(0).choice(len(g), FIT_ROWS, replace=False)
        g, logit = g[rows], logit[rows]
    a, b, m, w = 1.0, 0.0, 0.05, 0.05
    previous = -np.inf
    for _ in range(EM_STEPS):
        r, loglik = _truth(g, logit, a, b, m, w)
        m = float(np.clip(((1 - g) * r).sum() / max(r.sum(), 1e-12), *RATE_BOUNDS))
        w = float(np.clip((g * (1 - r)).sum() / max((1 - r).sum(), 1e-12), *RATE_BOUNDS))
        a, b = _logistic(logit, r, a, b)
        if loglik - previous < EM_TOLERANCE * len(g):
            break
        previous = loglik
    return {"a": a, "b": b, MISSING: m, WRONG: w}


def _logit(probs) -> np.ndarray:
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


def _truth(g: np.ndarray, logit: np.ndarray, a: float, b: float, m: float, w: float) -> tuple[np.ndarray, float]:
    """P(true bit = 1 | probability, given bit) per image, and the log-likelihood of the given bits."""
    q = 1 / (1 + np.exp(-(a * logit + b)))
    one = q * np.where(g > 0, 1 - m, m)
    zero = (1 - q) * np.where(g > 0, w, 1 - w)
    total = np.maximum(one + zero, 1e-300)
    return one / total, float(np.log(total).sum())


def _logistic(logit: np.ndarray, r: np.ndarray, a: float, b: float, steps: int = 3) -> tuple[float, float]:
    """A few Newton steps of the logistic regression of the soft targets r on the logit (slope a, offset b)."""
    for _ in range(steps):
        q = 1 / (1 + np.exp(-(a * logit + b)))
        s = q * (1 - q)
        grad = np.array([((r - q) * logit).sum(), (r - q).sum()])
        hess = np.array([[(s * logit * logit).sum(), (s * logit).sum()], [(s * logit).sum(), s.sum()]])
        a, b = np.array([a, b]) + np.linalg.solve(hess + 1e-6 * len(r) * np.eye(2), grad)
        a = float(np.clip(a, *SLOPE_BOUNDS))
    return a, float(b)


def detect_sets(given, probs) -> dict:
    """Per (image, class): the probability that the given bit is wrong, and which pairs to flag.

    Parameters
    ----------
    given : array_like of bool, shape (N, K)
        Whether each class is in each image's given set.
    probs : array_like of float, shape (N, K)
        Out-of-sample per-class (sigmoid) probabilities.

    Returns
    -------
    dict
        ``issues`` (N, K) bool; ``wrong`` (N, K) the probability that the bit
        is wrong; ``score`` (N, K) the review order, higher first; ``noise``
        {"missing": (K,), "wrong": (K,)} the expected share of each class's
        given 1s that are wrong and of its true 1s that are missing.
    """
    y = np.asarray(given, dtype=bool)
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-9, 1 - 1e-9)
    if y.shape != p.shape or p.ndim != 2:
        raise ValueError(f"given {y.shape} and probs {p.shape} must both be (N, K)")
    n, k = p.shape
    wrong = np.zeros((n, k))
    for c in range(k):
        bit = y[:, c].astype(np.int64)
        if n == 0 or bit.min() == bit.max():  # a class no one (or everyone) carries: nothing to fit a channel on
            continue
        model = fit_class(bit, p[:, c])
        if model["a"] < MIN_SLOPE:  # the probabilities say next to nothing about this class: no evidence
            continue
        truth, _ = _truth(bit.astype(np.float64), _logit(p[:, c]), model["a"], model["b"], model[MISSING],
                          model[WRONG])
        wrong[:, c] = np.where(bit > 0, 1 - truth, truth)
    backs = np.where(y, p, 1 - p)  # how much the probability backs the given bit
    agrees = (p >= AGREES_AT) == y
    issues = expected_f1_cut(wrong.ravel()).reshape(n, k) & ~agrees if n else np.zeros((0, k), dtype=bool)
    for c in np.flatnonzero(wrong.any(axis=0)):
        _recount(issues[:, c], y[:, c], p[:, c], wrong[:, c], ~agrees[:, c])
    if not informative(wrong[y]) or not informative(wrong[~y]):
        issues[:] = False
    ones, true_ones = y.sum(axis=0), (np.where(y, 1 - wrong, wrong)).sum(axis=0)
    noise = {WRONG: np.divide((wrong * y).sum(axis=0), ones, out=np.zeros(k), where=ones > 0),
             MISSING: np.divide((wrong * ~y).sum(axis=0), true_ones, out=np.zeros(k), where=true_ones > 0)}
    return {"issues": issues, "wrong": wrong, "score": (wrong + 1.0 - backs) / 2, "noise": noise}


def _recount(issues: np.ndarray, given: np.ndarray, p: np.ndarray, wrong: np.ndarray, disagrees: np.ndarray) -> None:
    """Per kind (wrong: given 1, missing: given 0) of one class, in place: where confident learning (prune by
    noise rate, per class as a yes/no question) counts more than EXPLAINED_AWAY times the flags, flag its count
    instead, most probably wrong first."""
    if given.min() == given.max():
        return
    confident = find_label_issues(given.astype(np.int64), np.stack([1 - p, p], axis=1), method="prune_by_noise_rate")
    for side in (given, ~given):
        counted, flagged = int((confident & side).sum()), int((issues & side).sum())
        if counted > EXPLAINED_AWAY * max(flagged, 1):
            candidates = np.flatnonzero(side & disagrees)
            issues[side] = False
            issues[candidates[np.argsort(-wrong[candidates], kind="stable")[:counted]]] = True


def kinds(given) -> np.ndarray:
    """Per (image, class) what a flag would suspect: "wrong" where the class is given, "missing" where not."""
    return np.where(np.asarray(given, dtype=bool), WRONG, MISSING)
