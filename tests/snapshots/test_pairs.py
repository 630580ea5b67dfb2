"""Compared pairs are kept by content, so a refresh does not read old images' thumbnails again (issue 16)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from app.snapshots import looks, pairs
from tests import fmnist
from tests.factories import add_class, label, upload


def _png(pixels) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def _forget_in_memory() -> None:
    """What a fresh process starts with: no looks, no pairs in memory."""
    looks._cache.clear()
    looks._memories.clear()


def _near_groups(client) -> list[list[int]]:
    r = client.post("/api/quality/duplicates")
    assert r.status_code == 200, r.text
    rows = {(r["kind"], r["what"]): r for r in client.get("/api/quality/duplicates").json()["rows"]}
    return rows[("near", "any")]["examples"]


def test_keys_do_not_depend_on_the_order_of_a_pair():
    a, b, c = "a" * 64, "0123456789abcdef" + "0" * 48, "f" * 64
    assert pairs.keys([a, b], [b, c]).tolist() == pairs.keys([b, c], [a, b]).tolist()
    assert len(set(pairs.keys([a, a, b], [b, c, c]).tolist())) == 3


def test_a_refresh_reads_kept_correlations_not_thumbnails(client, settings):
    """Look-alike sweaters share a pHash and only their thumbnails tell them apart: once compared, the verdict
    survives the thumbnails' loss (so it came from the kept pairs); a broken pair file is compared afresh."""
    images, _ = fmnist.load("train", 8558)
    jpeg = io.BytesIO()
    Image.fromarray(images[7]).convert("RGB").save(jpeg, "JPEG", quality=85)
    imported = upload(client, [("a.png", _png(images[5085])), ("b.png", _png(images[8557])),
                               ("c.png", _png(images[7])), ("c-copy.jpg", jpeg.getvalue())], source="web")["imported"]
    a, b, c, c_copy = (x["id"] for x in imported)
    add_class(client, "pullover")
    for image_id in (a, b, c, c_copy):
        label(client, image_id, "pullover")
    _forget_in_memory()
    assert _near_groups(client) == [[c, c_copy]]
    path = settings.cache_dir / pairs.FILE
    kept = pairs.Memory(path)
    assert len(kept) >= 2  # a-b and c-copy at least
    shas = {x["id"]: x["sha256"] for x in imported}
    r = kept.lookup(pairs.keys([shas[a], shas[c]], [shas[b], shas[c_copy]]))
    assert r[0] < looks.MIN_CORRELATION <= r[1]

    path.write_bytes(b"not an npz file")
    _forget_in_memory()
    assert _near_groups(client) == [[c, c_copy]]  # compared afresh from the thumbnails
    assert len(pairs.Memory(path)) == len(kept)  # and kept again

    for sha in shas.values():
        (settings.thumbs_dir / looks.thumb_key(sha).removeprefix("thumbs/")).unlink()
    _forget_in_memory()
    # Without thumbnails and without kept pairs, the pHash alone would join the two sweaters.
    assert _near_groups(client) == [[c, c_copy]]


def test_memory_merges_with_what_another_process_wrote(tmp_path):
    path = tmp_path / pairs.FILE
    one, two = pairs.Memory(path), pairs.Memory(path)
    one.add(np.array([5, 7], np.uint64), np.array([0.5, np.nan]))  # an unknown look is not kept
    one.save()
    two.add(np.array([9], np.uint64), np.array([0.995]))
    two.save()
    both = pairs.Memory(path)
    assert len(both) == 2
    assert np.allclose(both.lookup(np.array([9, 5, 7], np.uint64)), [0.995, 0.5, np.nan], equal_nan=True)
