"""Confident learning on seeded data with planted label errors and a known noise matrix."""

from __future__ import annotations

import time

import numpy as np
import pytest

from app.quality import mislabels
from tests import noise

K = 4
# P(given = i | true = j): columns are true classes. Class 0 is often mislabelled as 1, 2 as 3.
NOISE = np.array([
    [0.80, 0.05, 0.00, 0.00],
    [0.20, 0.90, 0.00, 0.05],
    [0.00, 0.05, 0.85, 0.00],
    [0.00, 0.00, 0.15, 0.95],
])


def planted(n: int = 4000, *, seed: int = 0, sharp: float = 3.0):
    """(given labels, out-of-sample probabilities, true labels): the model mostly knows the true class."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, K, n)
    given = np.array([rng.choice(K, p=NOISE[:, t]) for t in true])
    logits = rng.normal(0, 1, (n, K))
    logits[np.arange(n), true] += sharp
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return given, probs, true


def f1(found: np.ndarray, errors: np.ndarray) -> float:
    return 2 * (found & errors).sum() / (found.sum() + errors.sum())


def test_thresholds_are_mean_self_confidence():
    labels = np.array([0, 0, 1, 1, 1])
    probs = np.array([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8], [0.4, 0.6], [0.0, 1.0]])
    np.testing.assert_allclose(mislabels.confident_thresholds(labels, probs), [0.7, 0.8])
    per_group = mislabels.confident_thresholds(labels, probs, groups=np.array([0, 1, 0, 0, 1]))
    np.testing.assert_allclose(per_group[0], [0.9, 0.7])   # group 0: class 0 only from row 0, class 1 from rows 2-3
    np.testing.assert_allclose(per_group[1], [0.5, 1.0])


def test_confident_joint_counts_and_calibration():
    labels = np.array([0, 0, 0, 1, 1, 1])
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9], [0.1, 0.9], [0.2, 0.8], [0.3, 0.7]])
    raw = mislabels.confident_joint(labels, probs, calibrate=False)
    # thresholds: class 0 = 0.6, class 1 = 0.8; row 2 is labelled 0 but confidently 1.
    np.testing.assert_array_equal(raw, [[2, 1], [0, 2]])
    cal = mislabels.confident_joint(labels, probs)
    np.testing.assert_array_equal(cal.sum(axis=1), [3, 3])


def test_noise_matrix_is_recovered():
    given, probs, true = planted(20000, seed=1)
    est = mislabels.estimate_noise(given, probs)
    truth = np.zeros((K, K))
    np.add.at(truth, (given, true), 1)
    truth /= truth.sum()
    assert np.abs(est["joint"] - truth).max() < 0.02
    assert abs(est["noise"] - (given != true).mean()) < 0.03
    rates = [(true[given == i] != i).mean() for i in range(K)]
    np.testing.assert_allclose(est["noise_rate"], rates, atol=0.04)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("method", mislabels.FILTERS)
def test_planted_errors_are_found(seed, method):
    given, probs, true = planted(seed=seed)
    errors = given != true
    found = mislabels.find_label_issues(given, probs, method=method)
    assert f1(found, errors) > (0.7 if method == "confident_learning" else 0.8)
    assert (found & errors).sum() / found.sum() > 0.85                     # precision
    assert not found[probs.argmax(axis=1) == given].any()                 # the model agrees: never an issue


def test_the_count_comes_from_the_confident_joint():
    given, probs, true = planted(seed=7)
    off_diagonal = mislabels.find_label_issues(given, probs, method="confident_learning")
    lowest = mislabels.find_label_issues(given, probs, method="low_self_confidence")
    assert lowest.sum() == off_diagonal.sum()
    self_confidence = probs[np.arange(len(given)), given]
    assert self_confidence[lowest].max() <= self_confidence[~lowest & (probs.argmax(axis=1) != given)].min()
    half = mislabels.find_label_issues(given, probs, method="low_self_confidence", frac_noise=0.5)
    assert half.sum() == round(lowest.sum() / 2) and (half <= lowest).all()
    few = mislabels.find_label_issues(given[:40], probs[:40], method="low_self_confidence",
                                      min_examples_per_class=10)
    assert all((given[:40] == c).sum() - (few & (given[:40] == c)).sum() >= min(10, (given[:40] == c).sum())
               for c in range(K))


@pytest.mark.parametrize("method", mislabels.SCORE_METHODS)
def test_worst_scored_examples_are_planted_errors(method):
    given, probs, true = planted(seed=3)
    errors = given != true
    scores = mislabels.label_quality_scores(given, probs, method=method)
    assert scores.min() >= 0 and scores.max() <= 1
    worst = np.argsort(scores)[:50]
    assert errors[worst].all()
    assert errors[np.argsort(scores)[:200]].mean() > 0.95
    # lower means more likely wrong: errors score lower on average
    assert scores[errors].mean() < scores[~errors].mean()


def test_annotator_confidence_helps_when_it_carries_information():
    rng = np.random.default_rng(4)
    given, probs, true = planted(6000, seed=4, sharp=1.6)   # a weak model: ranking matters
    errors = given != true
    # A labeller who is often unsure about the images they get wrong.
    confidence = np.where(errors, rng.choice([1.0, 0.6, 0.3], len(given), p=[0.4, 0.35, 0.25]),
                          rng.choice([1.0, 0.6, 0.3], len(given), p=[0.85, 0.12, 0.03]))
    plain = mislabels.find_label_issues(given, probs)
    informed = mislabels.find_label_issues(given, probs, prior=confidence)
    assert f1(informed, errors) > f1(plain, errors) + 0.02
    assert not informed[probs.argmax(axis=1) == given].any()      # the prior never overrules an agreeing model
    # Uninformative confidence (everything "sure") changes nothing.
    same = mislabels.find_label_issues(given, probs, prior=np.ones(len(given)))
    np.testing.assert_array_equal(same, plain)
    # Scores move too: the informed ranking puts more errors first.
    top = lambda s: errors[np.argsort(s)[:300]].mean()  # noqa: E731
    assert top(mislabels.label_quality_scores(given, probs, prior=confidence)) > top(
        mislabels.label_quality_scores(given, probs))


def test_noise_by_group_finds_the_noisy_source():
    given, probs, true = planted(8000, seed=5)
    rng = np.random.default_rng(5)
    source = rng.choice(["camera", "web"], len(given))
    web = source == "web"
    flip = web & (rng.random(len(given)) < 0.3)
    given = np.where(flip, (true + 1) % K, given)
    out = mislabels.noise_by_group(given, probs, source)
    assert out["web"]["noise"] > out["camera"]["noise"] + 0.1
    assert out["web"]["n"] + out["camera"]["n"] == len(given)


def test_suggested_class_is_the_best_other_class():
    labels = np.array([0, 1])
    probs = np.array([[0.5, 0.1, 0.4], [0.2, 0.7, 0.1]])
    np.testing.assert_array_equal(mislabels.suggested_classes(labels, probs), [2, 0])


def test_bad_input_is_refused():
    probs = np.full((3, 2), 0.5)
    with pytest.raises(ValueError, match="labels must have shape"):
        mislabels.find_label_issues(np.array([0, 1]), probs)
    with pytest.raises(ValueError, match="from 0 to 1"):
        mislabels.find_label_issues(np.array([0, 1, 2]), probs)
    with pytest.raises(ValueError, match="method"):
        mislabels.find_label_issues(np.array([0, 1, 1]), probs, method="vibes")
    with pytest.raises(ValueError, match="method"):
        mislabels.label_quality_scores(np.array([0, 1, 1]), probs, method="vibes")
    with pytest.raises(ValueError, match="finite"):
        mislabels.find_label_issues(np.array([0, 1, 1]), np.array([[np.nan, 1], [1, 0], [0, 1]]))
    with pytest.raises(ValueError, match="prior"):
        mislabels.find_label_issues(np.array([0, 1, 1]), probs, prior=np.array([2.0, 1, 1]))
    assert mislabels.find_label_issues(np.zeros(0, int), np.zeros((0, 2))).shape == (0,)


def test_fast_on_100k_predictions():
    rng = np.random.default_rng(6)
    n, k = 100_000, 10
    labels = rng.integers(0, k, n)
    probs = rng.dirichlet(np.ones(k) * 0.3, n)
    confidence = rng.choice([1.0, 0.6, 0.3], n)
    start = time.perf_counter()
    found = mislabels.detect(labels, probs, prior=confidence)
    mislabels.noise_structure(labels, probs, posterior=found["posterior"])
    mislabels.estimate_noise(labels, probs)
    assert time.perf_counter() - start < 8.0  # about 2 s on an idle core; a quadratic step would take minutes


def fooled(n: int = 3000, *, seed: int = 0):
    """Look-alike noise the model has learnt: class 0 images labelled 1 often get a high probability of 1.

    Returns (given, probs, true, neighbours): neighbours are drawn mostly from the same true class (an
    embedding space where images of one class sit together), so their labels carry the true class.
    """
    rng = np.random.default_rng(seed)
    true = rng.integers(0, K, n)
    given = true.copy()
    swap = (true == 0) & (rng.random(n) < 0.2)
    given[swap] = 1
    logits = rng.normal(0, 1, (n, K))
    logits[np.arange(n), true] += 3.0
    learnt = swap & (rng.random(n) < 0.6)  # the model learnt the wrong label of most of these: nearly a tie
    logits[learnt, 1] += 3.0 + rng.normal(0, 0.5, learnt.sum())
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    by_class = [np.flatnonzero(true == c) for c in range(K)]
    neighbours = np.empty((n, 10), dtype=np.int64)
    for i in range(n):
        same = rng.random(10) < 0.8
        pool = by_class[true[i]]
        neighbours[i] = np.where(same, rng.choice(pool, 10), rng.integers(0, n, 10))
        neighbours[i][neighbours[i] == i] = -1  # never its own neighbour
    return given, probs, true, neighbours


def test_neighbours_find_errors_the_model_learnt():
    given, probs, true, neighbours = fooled()
    errors = given != true
    alone = mislabels.find_label_issues(given, probs)
    with_neighbours = mislabels.find_label_issues(given, probs, neighbours=neighbours)
    assert f1(with_neighbours, errors) > f1(alone, errors) + 0.05
    # The scores move the same way: more errors among the lowest.
    k = int(errors.sum())
    low = lambda s: errors[np.argsort(s)[:k]].mean()  # noqa: E731
    assert low(mislabels.label_quality_scores(given, probs, neighbours=neighbours)) > low(
        mislabels.label_quality_scores(given, probs)) + 0.05
    # An image that model and neighbours both put in its given class is never flagged.
    combined = mislabels.combine_evidence(probs, mislabels.neighbour_distribution(given, neighbours, K))
    assert not with_neighbours[combined.argmax(axis=1) == given].any()


def test_neighbour_distribution_smooths_towards_the_label_shares():
    labels = np.array([0, 0, 0, 1])
    dist = mislabels.neighbour_distribution(labels, np.array([[1, 2], [0, -1], [-1, -1], [0, 1]]), 2,
                                            smoothing=0.5)
    np.testing.assert_allclose(dist.sum(axis=1), 1.0)
    # Row 0: two neighbours labelled 0, plus 1 pseudo-neighbour spread 3:1.
    np.testing.assert_allclose(dist[0], [(2 + 0.75) / 3, 0.25 / 3])
    # No neighbours at all: no evidence either way.
    np.testing.assert_allclose(dist[2], [0.5, 0.5])
    with pytest.raises(ValueError, match="neighbours must have shape"):
        mislabels.neighbour_distribution(labels, np.zeros((3, 2), dtype=int), 2)
    with pytest.raises(ValueError, match="row indices below 4"):
        mislabels.neighbour_distribution(labels, np.array([[9], [0], [0], [0]]), 2)


# (shift of the true class's logit, scale of the logits into the softmax): a model less sure than it should be,
# a weak but calibrated one (P(true | logits) = softmax(2 * logits)), and a weak overconfident one.
MODELS = {"unsure": (3.0, 1.0), "calibrated": (2.0, 2.0), "overconfident": (2.0, 4.0)}


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("rate", [0.05, 0.2])
def test_the_count_and_the_estimate_follow_the_noise(rate, model):
    """However sure the model is, the flags' count and the noise estimate track how many labels are wrong: the
    temperature and channel are fitted to the given labels (a constant cut or threshold would not follow)."""
    shift, scale = MODELS[model]
    rng = np.random.default_rng(int(rate * 100))
    n = 6000
    true = rng.integers(0, K, n)
    given = np.where(rng.random(n) < rate, (true + rng.integers(1, K, n)) % K, true)
    logits = rng.normal(0, 1, (n, K))
    logits[np.arange(n), true] += shift
    probs = np.exp(scale * logits) / np.exp(scale * logits).sum(axis=1, keepdims=True)
    errors = given != true
    found = mislabels.find_label_issues(given, probs)
    assert abs(found.sum() - errors.sum()) < 0.1 * errors.sum()
    assert f1(found, errors) > f1(mislabels.find_label_issues(given, probs, method="low_self_confidence"), errors)
    assert abs(mislabels.noise_structure(given, probs)["noise"] - errors.mean()) < 0.01


def test_evidence_that_carries_nothing_flags_nothing():
    rng = np.random.default_rng(10)
    labels = rng.integers(0, 5, 400)
    for probs in (rng.dirichlet(np.ones(5), 400), np.full((400, 5), 0.2)):   # another task's; a model that learnt nothing
        found = mislabels.detect(labels, probs, prior=rng.choice([1.0, 0.3], 400),
                                 neighbours=np.full((400, 3), -1))
        assert not found["issues"].any()
    est = mislabels.noise_structure(labels, rng.dirichlet(np.ones(5), 400))
    assert not est["informative"] and est["noise"] > 0.5
    given, probs, _ = planted(seed=11)
    assert mislabels.noise_structure(given, probs)["informative"]


def test_expected_f1_cut_on_calibrated_probabilities():
    rng = np.random.default_rng(8)
    w = rng.beta(0.3, 3.0, 20_000)
    truth = rng.random(len(w)) < w
    flagged = mislabels.expected_f1_cut(w)
    order = np.argsort(-w)
    best = max(f1(np.isin(np.arange(len(w)), order[:m]), truth) for m in range(100, 8000, 100))
    assert f1(flagged, truth) > best - 0.01
    assert w[flagged].min() >= w[~flagged].max()                          # the most probable first
    assert not mislabels.expected_f1_cut(np.zeros(5)).any()


def test_noise_structure_adds_up_over_groups():
    given, probs, true = planted(8000, seed=9)
    rng = np.random.default_rng(9)
    source = rng.choice([0, 1], len(given))
    flip = (source == 1) & (rng.random(len(given)) < 0.25)
    given = np.where(flip, (true + 2) % K, given)
    est = mislabels.noise_structure(given, probs, groups={"source": source})
    parts = est["source"]
    assert parts[1]["noise"] > parts[0]["noise"] + 0.08
    overall = sum(p["noise"] * p["n"] for p in parts.values()) / len(given)
    assert abs(overall - est["noise"]) < 1e-9
    assert abs(est["joint"].sum() - len(given)) < 1e-6          # expected counts of (given, true)


PAIRS = {0: [1], 1: [0], 2: [3], 3: [2]}  # look-alike classes for the six-class world below


@pytest.mark.parametrize("kind", noise.KINDS)
def test_each_noise_kind_is_found_and_estimated(kind):
    """Each kind the benchmark matrix plants (tests/noise.py), on a model that also confuses look-alike classes by
    itself (which inflates estimates a little: a confusing class reads noisier than it is)."""
    k, rate = 6, 0.1
    rng = np.random.default_rng(noise.KINDS.index(kind))
    true = rng.integers(0, k, 4000)
    if kind == "rare_class":
        true = true[noise.subsample_rare(true, rng, 5, share=0.04)]
    n = len(true)
    source = rng.choice(3, n, p=[0.4, 0.35, 0.25])
    given, flipped = {
        "uniform": lambda: noise.uniform(true, rng, rate, k),
        "lookalike": lambda: noise.lookalike(true, rng, rate, PAIRS),
        "noisy_source": lambda: noise.noisy_source(true, rng, rate, k, source, noisy=0, factor=4),
        "rare_class": lambda: noise.rare_class(true, rng, rate, k, 5),
    }[kind]()
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), true] += 3.0
    partner = np.array([PAIRS.get(int(c), [int(c)])[0] for c in true])
    logits[np.arange(n), partner] += np.where(partner != true, 1.5, 0.0)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    confidence = np.where(flipped, rng.choice([1.0, 0.6, 0.3], n, p=[0.4, 0.35, 0.25]),
                          rng.choice([1.0, 0.6, 0.3], n, p=[0.85, 0.12, 0.03]))
    errors = given != true
    found = mislabels.detect(given, probs, prior=confidence)
    assert f1(found["issues"], errors) > (0.65 if kind == "lookalike" else 0.75)
    est = mislabels.noise_structure(given, probs, posterior=found["posterior"], groups={"source": source})
    assert abs(est["noise"] - errors.mean()) < 0.04
    if kind == "noisy_source":
        assert est["source"][0]["noise"] > 2 * max(est["source"][1]["noise"], est["source"][2]["noise"])
    if kind == "rare_class":
        involved = errors & ((true == 5) | (given == 5))
        assert (found["issues"] & involved).sum() >= 0.6 * involved.sum()
