"""The benchmark matrix's planted-noise kinds (tests/noise.py) and letters dataset (tests/letters.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tests import letters, noise

K = 10
PAIRS = {0: [6, 2], 6: [0, 2, 4], 2: [4, 6, 0], 4: [2, 6], 3: [4, 1], 1: [3], 5: [7, 9], 7: [5, 9], 9: [7, 5]}


def labels(n: int = 3000, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, K, n)


@pytest.mark.parametrize("rate", [0.05, 0.10, 0.20])
def test_uniform_flips_exactly_rate_to_other_classes(rate):
    y = labels()
    noisy, flipped = noise.uniform(y, np.random.default_rng(1), rate, K)
    assert flipped.sum() == round(rate * len(y))
    assert (noisy[flipped] != y[flipped]).all() and (noisy[~flipped] == y[~flipped]).all()
    # Any other class: every class receives flips.
    assert len(np.unique(noisy[flipped])) == K


def test_uniform_is_deterministic_from_the_generator():
    y = labels()
    a = noise.uniform(y, np.random.default_rng(5), 0.1, K)
    b = noise.uniform(y, np.random.default_rng(5), 0.1, K)
    c = noise.uniform(y, np.random.default_rng(6), 0.1, K)
    assert (a[0] == b[0]).all() and (a[1] == b[1]).all()
    assert (a[1] != c[1]).any()


@pytest.mark.parametrize("rate", [0.05, 0.10, 0.20])
def test_lookalike_flips_only_to_a_lookalike(rate):
    y = labels()
    noisy, flipped = noise.lookalike(y, np.random.default_rng(2), rate, PAIRS)
    assert flipped.sum() == round(rate * len(y))
    assert all(int(noisy[i]) in PAIRS[int(y[i])] for i in np.flatnonzero(flipped))
    assert not flipped[y == 8].any()  # bags have no look-alike
    assert (noisy[~flipped] == y[~flipped]).all()


def test_lookalike_letters_pairs_are_classes_and_symmetric_enough():
    for c, alike in letters.SIMILAR.items():
        assert alike and c not in alike and all(0 <= a < len(letters.CLASSES) for a in alike)
    y = np.arange(2000) % len(letters.CLASSES)
    noisy, flipped = noise.lookalike(y, np.random.default_rng(0), 0.2, letters.SIMILAR)
    assert flipped.sum() == 400
    assert {(letters.CLASSES[y[i]], letters.CLASSES[noisy[i]]) for i in np.flatnonzero(flipped)} >= {("O", "Q"),
                                                                                                    ("E", "F")}


def test_lookalike_refuses_more_than_the_pool():
    y = np.full(100, 8)
    with pytest.raises(ValueError):
        noise.lookalike(y, np.random.default_rng(0), 0.1, PAIRS)


@pytest.mark.parametrize("rate", [0.05, 0.10, 0.20])
def test_noisy_source_is_four_times_the_others_and_totals_rate(rate):
    y = labels(6000)
    src = np.random.default_rng(3).integers(0, 3, len(y))
    noisy, flipped = noise.noisy_source(y, np.random.default_rng(4), rate, K, src, noisy=0, factor=4)
    assert abs(flipped.sum() - rate * len(y)) <= 2
    per = np.array([flipped[src == s].mean() for s in range(3)])
    assert per[0] == pytest.approx(4 * per[1], rel=0.05) and per[1] == pytest.approx(per[2], rel=0.05)
    assert (noisy[flipped] != y[flipped]).all() and (noisy[~flipped] == y[~flipped]).all()


def test_source_rates_weighted_mean_is_rate():
    shares = np.array([0.5, 0.3, 0.2])
    rates = noise.source_rates(shares, 0.1, noisy=1, factor=4)
    assert float((shares * rates).sum()) == pytest.approx(0.1)
    assert rates[1] == pytest.approx(4 * rates[0]) and rates[0] == pytest.approx(rates[2])


def test_subsample_rare_leaves_the_share_and_all_other_images():
    y = labels(5000)
    keep = noise.subsample_rare(y, np.random.default_rng(0), rare=3, share=0.04)
    kept = y[keep]
    assert (np.diff(keep) > 0).all()
    assert (kept == 3).mean() == pytest.approx(0.04, abs=0.002)
    assert (kept != 3).sum() == (y != 3).sum()


@pytest.mark.parametrize("rate", [0.05, 0.10, 0.20])
def test_rare_class_noise_goes_out_of_and_into_the_rare_class(rate):
    y = labels(5000)
    y = y[noise.subsample_rare(y, np.random.default_rng(0), rare=3)]
    noisy, flipped = noise.rare_class(y, np.random.default_rng(7), rate, K, rare=3)
    assert flipped.sum() == round(rate * len(y))
    assert (noisy[flipped] != y[flipped]).all() and (noisy[~flipped] == y[~flipped]).all()
    n_rare = (y == 3).sum()
    out_of = (flipped & (y == 3)).sum()
    into = (flipped & (noisy == 3)).sum()
    assert out_of == round(rate * n_rare) and into == out_of
    # The rest goes elsewhere, never into the rare class.
    assert ((noisy[flipped & (y != 3)] == 3).sum()) == into


def test_letters_render_deterministically_balanced_and_varied():
    images, y = letters.load(60, seed=0)
    again, y_again = letters.load(40, seed=0)
    assert images.shape == (60, 28, 28) and images.dtype == np.uint8
    assert (again == images[:40]).all() and (y_again == y[:40]).all()  # image i does not depend on n
    assert (np.bincount(y, minlength=20) == 3).all()  # every block of 20 holds each class once
    assert (images.reshape(60, -1).max(axis=1) > 100).all()  # ink on every image
    # Real variation: two images of the same letter differ (font, pose, noise).
    same = np.flatnonzero(y == y[0])
    assert (images[same[0]] != images[same[1]]).mean() > 0.2
    other, _ = letters.load(20, seed=1)
    assert (other != images[:20]).any()
    assert len(letters.fonts()) >= 10
