"""Metrics against small cases worked out by hand, and against a plain loop on random data."""

from __future__ import annotations

import numpy as np
import pytest

from app.training.evaluate import evaluate

CLASSES = ["a", "b", "c"]
LABELS = np.array([0, 0, 1, 1, 2])
PROBS = np.array([
    [0.70, 0.20, 0.10],  # a -> a, confidence 0.70 (bin 10 of 15)
    [0.20, 0.50, 0.30],  # a -> b, 0.50 (bin 7)
    [0.10, 0.75, 0.15],  # b -> b, 0.75 (bin 11)
    [0.62, 0.28, 0.10],  # b -> a, 0.62 (bin 9)
    [0.10, 0.15, 0.75],  # c -> c, 0.75 (bin 11)
])
SOURCES = ["stock", "stock", "web", "web", "web"]
TAGS = [(), ("dark",), ("dark", "blurred"), (), ("blurred",)]


def test_hand_computed_case():
    m = evaluate(LABELS, PROBS, classes=CLASSES, sources=SOURCES, tags=TAGS)
    assert m["count"] == 5
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["confusion"] == [[1, 1, 0], [1, 1, 0], [0, 0, 1]]  # rows: given class, columns: predicted
    assert m["per_class"]["a"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert m["per_class"]["c"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert m["macro_f1"] == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    # bins: 10 -> |1 - 0.70|, 7 -> |0 - 0.50|, 11 -> |2 - 1.50|, 9 -> |0 - 0.62|; over 5 examples
    assert m["ece"] == pytest.approx((0.30 + 0.50 + 0.50 + 0.62) / 5)
    assert m["per_source"] == {"stock": pytest.approx(1 / 2), "web": pytest.approx(2 / 3)}
    assert m["per_tag"] == {"blurred": 1.0, "dark": 0.5, "untagged": 0.5}


def test_precision_and_recall_differ():
    # given a, a, b; predicted a, b, b: a has precision 1 and recall 1/2, b precision 1/2 and recall 1
    m = evaluate(np.array([0, 0, 1]), np.array([[0.9, 0.1], [0.4, 0.6], [0.3, 0.7]]), classes=["a", "b"])
    assert m["per_class"]["a"]["precision"] == 1.0 and m["per_class"]["a"]["recall"] == 0.5
    assert m["per_class"]["b"]["precision"] == 0.5 and m["per_class"]["b"]["recall"] == 1.0
    assert m["per_class"]["a"]["f1"] == pytest.approx(2 / 3)
    assert m["per_source"] == {} and m["per_tag"] == {}


def test_class_never_given_nor_predicted_is_left_out_of_macro_f1():
    m = evaluate(np.array([0, 1]), np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1]]), classes=CLASSES)
    assert m["macro_f1"] == 1.0
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_confident_and_right_is_perfectly_calibrated():
    probs = np.eye(3)[[0, 1, 2, 2]]
    m = evaluate(np.array([0, 1, 2, 2]), probs, classes=CLASSES)
    assert m["ece"] == 0.0 and m["accuracy"] == 1.0


def test_matches_a_plain_loop_on_random_data():
    rng = np.random.default_rng(0)
    n, k = 500, 4
    labels = rng.integers(0, k, n)
    probs = rng.dirichlet(np.ones(k), n)
    m = evaluate(labels, probs, classes=list("wxyz"))
    pred = probs.argmax(1)
    confusion = [[0] * k for _ in range(k)]
    for t, p in zip(labels, pred):
        confusion[t][p] += 1
    assert m["confusion"] == confusion
    assert m["accuracy"] == pytest.approx(np.mean(pred == labels))
    conf = probs.max(1)
    ece = 0.0
    for lo, hi in zip(np.linspace(0, 1, 16)[:-1], np.linspace(0, 1, 16)[1:]):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            ece += inside.mean() * abs((pred == labels)[inside].mean() - conf[inside].mean())
    assert m["ece"] == pytest.approx(ece)
    f1 = []
    for c in range(k):
        tp = np.sum((pred == c) & (labels == c))
        precision, recall = tp / np.sum(pred == c), tp / np.sum(labels == c)
        f1.append(2 * precision * recall / (precision + recall))
    assert m["macro_f1"] == pytest.approx(np.mean(f1))


@pytest.mark.parametrize("labels, probs, message", [
    (np.array([0, 1]), np.ones((3, 3)) / 3, "labels must be"),
    (np.array([], dtype=int), np.zeros((0, 3)), "no examples"),
    (np.array([0, 3]), np.ones((2, 3)) / 3, "from 0 to 2"),
    (np.array([0, 1]), np.ones((2, 2)) / 2, "2 columns"),
])
def test_bad_input_is_a_value_error(labels, probs, message):
    with pytest.raises(ValueError, match=message):
        evaluate(labels, probs, classes=CLASSES)


def test_sources_must_align():
    with pytest.raises(ValueError, match="sources has 1 entries for 5"):
        evaluate(LABELS, PROBS, classes=CLASSES, sources=["x"])
