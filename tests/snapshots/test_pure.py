"""The pure parts on synthetic data: near-duplicate groups against brute force, split arithmetic."""

from __future__ import annotations

import hashlib
import random
from collections import Counter

import numpy as np
import pytest

from app.snapshots import neardup, splits


def _brute_force(hashes: list[int], max_distance: int) -> list[int]:
    parent = list(range(len(hashes)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(len(hashes)):
        for j in range(i + 1, len(hashes)):
            if bin((hashes[i] ^ hashes[j]) & (2**64 - 1)).count("1") <= max_distance:
                parent[root(i)] = root(j)
    return [root(i) for i in range(len(hashes))]


@pytest.mark.parametrize("seed", range(5))
def test_near_duplicate_groups_match_brute_force_on_planted_copies(seed):
    rng = random.Random(seed)
    originals = [rng.getrandbits(64) for _ in range(150)]
    hashes = list(originals)
    for _ in range(150):  # planted near-copies, 0 to 6 bits flipped (up to 4 must join their original)
        h = rng.choice(originals)
        for bit in rng.sample(range(64), rng.randint(0, 6)):
            h ^= 1 << bit
        hashes.append(h)
    signed = np.array(hashes, dtype=np.uint64).view(np.int64)
    got = neardup.groups(signed, max_distance=4).tolist()
    want = _brute_force(hashes, 4)
    assert len(set(got)) == len(set(want)) < len(hashes)
    assert all((got[i] == got[j]) == (want[i] == want[j]) for i in range(len(hashes)) for j in range(len(hashes)))


def _shas(n: int, salt: str = "") -> list[str]:
    return [hashlib.sha256(f"{salt}{i}".encode()).hexdigest() for i in range(n)]


def test_split_sizes_are_within_one_of_ideal_in_every_group():
    rng = random.Random(1)
    groups = [(rng.randint(0, 6), rng.choice("ab")) for _ in range(997)]
    shas = _shas(997)
    placed = splits.assign(shas, groups, val=0.17, test=0.11, seed=3, folds=7)
    for g, n in Counter(groups).items():
        counts = Counter(s for (s, _), gg in zip(placed, groups) if gg == g)
        for split, share in (("val", 0.17), ("test", 0.11), ("train", 0.72)):
            assert abs(counts[split] - n * share) <= 1
    folds = Counter(f for _, f in placed)
    assert sorted(folds) == list(range(7)) and max(folds.values()) - min(folds.values()) <= 1


def test_splits_depend_on_contents_and_seed_not_on_order_and_barely_move_when_images_are_added():
    shas, groups = _shas(500), [(i % 3, "s") for i in range(500)]
    placed = dict(zip(shas, (s for s, _ in splits.assign(shas, groups, val=0.2, test=0.0, seed=0, folds=5))))
    order = list(range(500))
    random.Random(2).shuffle(order)
    shuffled = splits.assign([shas[i] for i in order], [groups[i] for i in order], val=0.2, test=0.0, seed=0, folds=5)
    assert {shas[i]: s for i, (s, _) in zip(order, shuffled)} == placed
    other_seed = splits.assign(shas, groups, val=0.2, test=0.0, seed=1, folds=5)
    assert [s for s, _ in other_seed] != list(placed.values())
    more = shas + _shas(10, "new")
    grown = splits.assign(more, groups + [(i % 3, "s") for i in range(10)], val=0.2, test=0.0, seed=0, folds=5)
    moved = sum(placed[sha] != s for sha, (s, _) in zip(more, grown) if sha in placed)
    assert moved <= 10  # each new image displaces at most about one old one


def test_content_hash_ignores_row_order():
    rows = [("b" * 64, "cat", "train", 0), ("a" * 64, "dog", "val", 1)]
    assert splits.content_hash(rows) == splits.content_hash(reversed(rows))
    assert splits.content_hash(rows) != splits.content_hash([rows[0], ("a" * 64, "dog", "train", 1)])
