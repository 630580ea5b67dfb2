"""The pure parts: near-duplicate groups against brute force and the second check, split arithmetic."""

from __future__ import annotations

import hashlib
import io
import random
from collections import Counter

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from app.images import hashing
from app.images.decode import Limits, decode
from app.snapshots import looks, neardup, splits
from app.snapshots.health import report
from app.snapshots.rows import Rows
from tests import fmnist


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


def test_split_shares_follow_the_fractions_and_folds_are_balanced_on_average():
    shas = _shas(20_000)
    placed = splits.assign(shas, val=0.17, test=0.11, seed=3, folds=7)
    counts = Counter(s for s, _ in placed)
    for split, share in (("val", 0.17), ("test", 0.11), ("train", 0.72)):
        assert abs(counts[split] / 20_000 - share) < 0.01, counts  # binomial sd ~0.003
    folds = Counter(f for _, f in placed)
    assert sorted(folds) == list(range(7)) and max(folds.values()) / min(folds.values()) < 1.1
    # Folds do not repeat the split: each fold holds each split in about the same share.
    in_val = Counter(f for s, f in placed if s == "val")
    assert all(abs(in_val[f] / folds[f] - 0.17) < 0.03 for f in range(7))


def test_an_images_split_depends_only_on_itself_and_the_seed():
    shas = _shas(500)
    placed = dict(zip(shas, splits.assign(shas, val=0.2, test=0.1, seed=0, folds=5)))
    order = list(range(500))
    random.Random(2).shuffle(order)
    shuffled = splits.assign([shas[i] for i in order], val=0.2, test=0.1, seed=0, folds=5)
    assert {shas[i]: p for i, p in zip(order, shuffled)} == placed
    grown = _shas(300, "new") + shas  # 300 new images, in front: nothing old moves, not even one
    assert dict(zip(grown, splits.assign(grown, val=0.2, test=0.1, seed=0, folds=5)))[shas[0]] == placed[shas[0]]
    assert all(placed[s] == p for s, p in zip(grown, splits.assign(grown, val=0.2, test=0.1, seed=0, folds=5))
               if s in placed)
    subset = shas[::3]
    assert all(placed[s] == p for s, p in zip(subset, splits.assign(subset, val=0.2, test=0.1, seed=0, folds=5)))
    other_seed = splits.assign(shas, val=0.2, test=0.1, seed=1, folds=5)
    assert sum(placed[s][0] != p[0] for s, p in zip(shas, other_seed)) > 100


def test_near_duplicate_groups_share_one_place_and_earlier_places_win():
    shas = _shas(3000)
    near = [i // 3 for i in range(3000)]  # groups of three
    placed = splits.assign(shas, val=0.3, test=0.2, seed=5, folds=4, near=near)
    for g in range(1000):
        assert len({placed[3 * g + k] for k in range(3)}) == 1
    assert {s for s, _ in placed} == {"train", "val", "test"}
    # A group that gains a member: without earlier places the newcomer may pull the group elsewhere...
    old = _shas(400, "old")
    before = splits.assign(old, val=0.3, test=0.2, seed=5, folds=4)
    newcomers = _shas(400, "copy")
    both = old + newcomers
    pairs = list(range(400)) * 2  # newcomer k is a near-duplicate of old image k
    fresh = splits.assign(both, val=0.3, test=0.2, seed=5, folds=4, near=pairs)
    assert sum(fresh[k] != before[k] for k in range(400)) > 50
    # ... so with the earlier snapshot's places, old images stay and each newcomer joins its original.
    kept = splits.assign(both, val=0.3, test=0.2, seed=5, folds=4, near=pairs, previous=before + [None] * 400)
    assert kept[:400] == before and kept[400:] == before


def test_the_second_check_keeps_real_copies_and_drops_fashion_mnist_look_alikes():
    """Fashion-MNIST train images 5085 and 8557 have equal pHashes but are two different sweaters (r 0.979);
    re-encoded and brightened copies of an image stay near-duplicates."""
    images, _ = fmnist.load("train", 8558)

    def looked(img, fmt="PNG", **kw):
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        d = decode(buf.getvalue(), Limits(10**8, 256, 1280))
        return d.phash, hashing.look(Image.open(io.BytesIO(d.thumb)))

    a, b = Image.fromarray(images[5085]), Image.fromarray(images[8557])
    shirt = Image.fromarray(images[0]).resize((112, 112), Image.Resampling.BICUBIC)
    found = [looked(a), looked(b), looked(shirt), looked(shirt.convert("RGB"), "JPEG", quality=70),
             looked(ImageEnhance.Brightness(shirt).enhance(1.2)), looked(shirt.resize((56, 56)))]
    phashes = np.array([h for h, _ in found], dtype=np.int64)
    assert hashing.hamming(int(phashes[0]), int(phashes[1])) <= neardup.MAX_DISTANCE
    plain = neardup.groups(phashes)
    assert plain[0] == plain[1] and len(set(plain[2:].tolist())) == 1
    vectors = {i: v for i, (_, v) in enumerate(found)}
    confirmed = neardup.groups(phashes, confirm=lambda x, y: looks.confirm_pairs(vectors, x, y))
    assert confirmed[0] != confirmed[1] and len(set(confirmed[2:].tolist())) == 1
    # An image whose thumbnail cannot be read keeps the pHash verdict rather than silently losing its group.
    vectors[1] = np.zeros(0, np.uint8)
    assert neardup.groups(phashes, confirm=lambda x, y: looks.confirm_pairs(vectors, x, y))[1] == confirmed[0]


def test_content_hash_ignores_row_order():
    rows = [("b" * 64, "cat", "train", 0), ("a" * 64, "dog", "val", 1)]
    assert splits.content_hash(rows) == splits.content_hash(reversed(rows))
    assert splits.content_hash(rows) != splits.content_hash([rows[0], ("a" * 64, "dog", "train", 1)])


def test_health_warns_when_a_class_has_no_training_images():
    split = ["train"] * 6 + ["val"] * 2 + ["val", "test"]
    rows = Rows.of(range(10), [_shas(1, str(i))[0] for i in range(10)], ["s"] * 10, [1] * 8 + [2] * 2,
                   phash=[i * 7919 for i in range(10)], split=split, fold=[0] * 10)
    warnings = {w["kind"]: w for w in report(rows, {1: "shirt", 2: "hat"}, folds=2)["warnings"]}
    assert warnings["no_train"]["class"] == "hat" and "no training images" in warnings["no_train"]["message"]
    assert all(w["class"] != "shirt" for w in report(rows, {1: "shirt", 2: "hat"}, folds=2)["warnings"]
               if w["kind"] == "no_train")
