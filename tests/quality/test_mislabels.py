"""Confident learning on seeded data with planted label errors and a known noise matrix."""

from __future__ import annotations

import time

import numpy as np
import pytest

from app.quality import mislabels

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
    lowest = mislabels.find_label_issues(given, probs)
    assert lowest.sum() == off_diagonal.sum()
    self_confidence = probs[np.arange(len(given)), given]
    assert self_confidence[lowest].max() <= self_confidence[~lowest & (probs.argmax(axis=1) != given)].min()
    half = mislabels.find_label_issues(given, probs, frac_noise=0.5)
    assert half.sum() == round(lowest.sum() / 2) and (half <= lowest).all()
    few = mislabels.find_label_issues(given[:40], probs[:40], min_examples_per_class=10)
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
    mislabels.find_label_issues(labels, probs, prior=confidence)
    mislabels.label_quality_scores(labels, probs, prior=confidence)
    mislabels.estimate_noise(labels, probs)
    assert time.perf_counter() - start < 2.0
