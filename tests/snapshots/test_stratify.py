"""Iterative stratification of sets of classes (app.snapshots.stratify): class shares kept in every split and
fold, placements kept across snapshots, near-duplicates together, and no dependence on row order."""

from __future__ import annotations

import hashlib

import numpy as np

from app.snapshots import splits
from app.snapshots.stratify import assign_sets

SHARES = (0.4, 0.3, 0.25, 0.2, 0.15, 0.1, 0.08, 0.05, 0.03, 0.02, 0.01, 0.005)


def _synthetic(n: int, seed: int = 0) -> tuple[list[str], list[list[int]]]:
    """n images, 12 classes from 40 % down to 0.5 %, correlated: class k+1 comes more often with class k."""
    rng = np.random.default_rng(seed)
    sets = []
    for _ in range(n):
        s, prev = [], False
        for k, p in enumerate(SHARES):
            if rng.random() < (min(1.0, 2.5 * p) if prev else p):
                s.append(k)
                prev = True
            else:
                prev = False
        sets.append(s)
    shas = [hashlib.sha256(f"img-{seed}-{i}".encode()).hexdigest() for i in range(n)]
    return shas, sets


def _gap(placed: list, sets: list[list[int]], parts: list, pick) -> float:
    """The mean over classes of the largest |share in a part - share overall| (points)."""
    gaps = []
    for c in range(len(SHARES)):
        has = np.array([c in s for s in sets])
        overall = has.mean()
        worst = 0.0
        for p in parts:
            inside = np.array([pick(x) == p for x in placed])
            if inside.sum():
                worst = max(worst, abs(has[inside].mean() - overall))
        gaps.append(worst)
    return 100 * float(np.mean(gaps))


def test_class_shares_hold_in_every_split_and_fold_far_better_than_hashing():
    rows = []
    for seed in range(5):
        shas, sets = _synthetic(3000, seed)
        ours = assign_sets(shas, sets, val=0.2, test=0.1, seed=seed, folds=5)
        hashed = splits.assign(shas, val=0.2, test=0.1, seed=seed, folds=5)
        rows.append((_gap(ours, sets, ["train", "val", "test"], lambda x: x[0]),
                     _gap(hashed, sets, ["train", "val", "test"], lambda x: x[0]),
                     _gap(ours, sets, list(range(5)), lambda x: x[1]),
                     _gap(hashed, sets, list(range(5)), lambda x: x[1])))
        rare = [i for i, s in enumerate(sets) if 11 in s]
        in_val = sum(ours[i][0] == "val" for i in rare)
        assert abs(in_val - 0.2 * len(rare)) <= 1, (seed, len(rare), in_val)
    ours_split, hash_split, ours_fold, hash_fold = np.mean(rows, axis=0)
    print(f"largest share gap, mean over classes and seeds: splits {ours_split:.2f} points (hashing "
          f"{hash_split:.2f}), folds {ours_fold:.2f} (hashing {hash_fold:.2f})")
    assert ours_split < 1.0 and ours_fold < 1.2
    assert ours_split < hash_split / 2 and ours_fold < hash_fold / 2


def test_placements_before_are_kept_and_new_images_even_out_the_rest():
    shas, sets = _synthetic(2000, 7)
    first = assign_sets(shas[:1500], sets[:1500], val=0.2, test=0.0, seed=3, folds=4)
    later = assign_sets(shas, sets, val=0.2, test=0.0, seed=3, folds=4, previous=[*first, *[None] * 500])
    assert later[:1500] == first                                         # nobody placed before moves
    assert {split for split, _ in later} == {"train", "val"}             # test 0: never test
    assert _gap(later, sets, ["train", "val"], lambda x: x[0]) < 1.5


def test_row_order_does_not_matter_and_near_duplicates_stay_together():
    shas, sets = _synthetic(800, 2)
    near = [i // 4 if i < 200 else 1000 + i for i in range(800)]          # the first 200 in groups of four
    placed = assign_sets(shas, sets, val=0.25, test=0.0, seed=1, folds=3, near=near)
    for g in range(50):
        assert len({placed[i] for i in range(4 * g, 4 * g + 4)}) == 1
    perm = np.random.default_rng(0).permutation(800)
    again = assign_sets([shas[i] for i in perm], [sets[i] for i in perm], val=0.25, test=0.0, seed=1, folds=3,
                        near=[near[i] for i in perm])
    assert [again[list(perm).index(i)] for i in range(800)] == placed
    other = assign_sets(shas, sets, val=0.25, test=0.0, seed=2, folds=3, near=near)
    assert other != placed                                               # the seed matters
