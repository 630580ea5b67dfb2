"""Agreement and kappa; near-duplicate label conflicts and groups crossing sources or splits (pure numpy)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.quality import agreement, duplicates


def test_kappa_known_values():
    # The textbook 2x2 table: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no -> p_o 0.7, p_e 0.5, kappa 0.4.
    a = ["y"] * 25 + ["n"] * 25
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert agreement.agreement(a, b) == pytest.approx(0.7)
    assert agreement.cohens_kappa(a, b) == pytest.approx(0.4)
    assert agreement.cohens_kappa([1, 2, 3], [1, 2, 3]) == 1.0
    assert agreement.cohens_kappa([1, 1], [1, 1]) == 1.0          # chance agreement is 1: defined as 1
    assert agreement.cohens_kappa([1, 2], [2, 1]) < 0
    assert math.isnan(agreement.cohens_kappa([], []))
    with pytest.raises(ValueError):
        agreement.cohens_kappa([1, 2], [1])


def test_agreement_by_week_and_class_shows_drift():
    rng = np.random.default_rng(0)
    first = rng.integers(0, 3, 300)
    week = np.repeat(["2026-01-05", "2026-01-12", "2026-01-19"], 100)
    second = first.copy()
    drift = (week == "2026-01-05") & (first == 2) & (rng.random(300) < 0.6)   # week one's "2" means something else now
    second[drift] = 1
    by_week = agreement.agreement_by_group(first, second, week)
    assert list(by_week) == ["2026-01-05", "2026-01-12", "2026-01-19"]
    assert by_week["2026-01-05"]["agreement"] < 0.9 and by_week["2026-01-12"]["agreement"] == 1.0
    assert by_week["2026-01-05"]["kappa"] < by_week["2026-01-19"]["kappa"] == 1.0
    by_class = agreement.agreement_by_class(first, second)
    assert by_class[2]["agreement"] < by_class[0]["agreement"] == 1.0
    assert sum(c["n"] for c in by_class.values()) == 300


def test_label_conflicts_scores_and_majority():
    groups = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])
    labels = np.array([5, 5, 7, 3, -1, 4, 6, 4, 6, 7])
    out = duplicates.label_conflicts(groups, labels)
    np.testing.assert_array_equal(out["conflict"], [1, 1, 1, 0, 0, 1, 1, 1, 1, 0])
    np.testing.assert_allclose(out["score"][:3], [0.5, 0.5, 1.0])    # the odd one out scores highest
    assert out["suggested"][2] == 5 and out["suggested"][0] == -1     # the majority label, for the minority
    assert (out["suggested"][5:9] == -1).all()                        # a tie suggests nothing
    assert not out["conflict"][4]                                     # unlabelled images are never in conflict


def test_phash_groups_and_crossings():
    base = np.int64(0x0F0F_0F0F_0F0F_0F0F)
    hashes = np.array([base, base ^ 0b1, base ^ 0b111, ~base, ~base], dtype=np.int64)
    groups = duplicates.phash_groups(hashes)
    assert groups[0] == groups[1] == groups[2] and groups[3] == groups[4] != groups[0]
    exact = duplicates.phash_groups(hashes, max_distance=0)
    assert exact[0] != exact[1] and exact[3] == exact[4]
    sources = np.array(["cam", "web", "cam", "cam", "cam"], dtype=object)
    np.testing.assert_array_equal(duplicates.crossing_groups(groups, sources), [1, 1, 1, 0, 0])
    splits = np.array(["train", "train", None, "train", "val"], dtype=object)
    np.testing.assert_array_equal(duplicates.crossing_groups(groups, splits), [0, 0, 0, 1, 1])
