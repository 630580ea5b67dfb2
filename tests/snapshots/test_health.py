"""Health report numbers against counts computed independently here, for a snapshot and the live dataset."""

from __future__ import annotations

import io
import statistics
from collections import Counter

from PIL import Image as PILImage
from sqlalchemy import select

from app.db.models import Flag, Image, Snapshot, SnapshotItem
from tests import fmnist
from tests.factories import add_class, label, upload
from tests.snapshots.conftest import freeze, items


def _bmp(i: int) -> bytes:
    """The i-th Fashion-MNIST image as BMP: the same pixels as the PNG upload, other bytes (a near-duplicate)."""
    images, _ = fmnist.load("train", i + 1)
    buf = io.BytesIO()
    PILImage.fromarray(images[i]).save(buf, format="BMP")
    return buf.getvalue()


def _components(ids: list[int], phash: dict[int, int]) -> list[set[int]]:
    """Near-duplicate groups by brute force: every pair compared, groups merged transitively."""
    groups: list[set[int]] = []
    for i in ids:
        touching = [g for g in groups if any(bin(phash[i] ^ phash[j]).count("1") <= 4 for j in g)]
        merged = {i}.union(*touching)
        groups = [g for g in groups if g not in touching] + [merged]
    return groups


def _add_near_duplicates_flag_and_small_class(labelled, db) -> tuple[list[int], int]:
    client = labelled.client
    report = upload(client, [(f"copy-{i}.bmp", _bmp(i)) for i in range(3)], source="web")
    copies = [x["id"] for x in report["imported"]]
    assert len(copies) == 3
    for n, image_id in enumerate(copies):  # same class as the original, sure
        label(client, image_id, labelled.given[labelled.studio[n]]["class"], confidence=1.0, ms=250)
    add_class(client, "hat")
    for image_id in labelled.web[-2:]:  # relabel two images into a tiny class
        label(client, image_id, "hat", confidence=1.0, tags=["cluttered"])
    flagged = labelled.studio[1]
    with db.writing() as s:
        s.add(Flag(image_id=flagged, kind="mislabel", status="open", details={}))
        s.commit()
    return copies, flagged


def _expected(client, got: list[dict], flagged: int) -> dict:
    meta = {x["image"]: client.get(f"/api/images/{x['image']}").json() for x in got}
    phash = {i: int(m["phash"], 16) for i, m in meta.items()}
    ids = sorted(meta)
    usable = [i for i in ids if meta[i]["label"]["confidence"] >= 0.8 and i != flagged]
    split = {x["image"]: x["split"] for x in got}
    every = _components(ids, phash)
    leaking = [g for g in every if len({split[i] for i in g}) > 1]
    conf = [meta[i]["label"]["confidence"] for i in ids]
    ms = [meta[i]["history"][-1]["ms"] for i in ids if meta[i]["history"][-1]["ms"] is not None]
    return {
        "total": len(ids),
        "classes": Counter(x["class"] for x in got),
        "sources": Counter((x["class"], meta[x["image"]]["source"]) for x in got),
        "confidence": [sum(lo <= c < hi for c in conf) for lo, hi in ((0, .2), (.2, .4), (.4, .6), (.6, .8), (.8, 1.01))],
        "tagged": sum(1 for i in ids if meta[i]["label"]["tags"]),
        "per_tag": Counter(t for i in ids for t in meta[i]["label"]["tags"]),
        "time": [sum(lo <= m < hi for m in ms) for lo, hi in
                 ((0, 1000), (1000, 2000), (2000, 5000), (5000, 10000), (10000, 30000), (30000, 10**9))],
        "time_unknown": len(ids) - len(ms),
        "median_ms": statistics.median(ms),
        "effective": len(_components(usable, phash)),
        "confident": sum(1 for c in conf if c >= 0.8),
        "non_duplicate": len(every),
        "leak_groups": len(leaking),
        "leak_images": sum(len(g) for g in leaking),
    }


def _legacy_copy(db, snapshot_id: int, moved: list[int]) -> int:
    """The snapshot as Loupe froze it before splits were stable (dealt by position per class, so a copy could
    land apart from its original): the same rows with `moved` images in another split. Such snapshots exist
    in older data dirs; their health report must still name the leak."""
    with db.writing() as s:
        old = s.get(Snapshot, snapshot_id)
        legacy = Snapshot(name=f"{old.name} (legacy)", taxonomy_version_id=old.taxonomy_version_id, filter=old.filter,
                          split=old.split, seed=old.seed, classes=old.classes, hash=old.hash, count=old.count)
        s.add(legacy)
        s.flush()
        for item in s.scalars(select(SnapshotItem).where(SnapshotItem.snapshot_id == snapshot_id)).all():
            split = item.split if item.image_id not in moved else ("val" if item.split == "train" else "train")
            s.add(SnapshotItem(snapshot_id=legacy.id, image_id=item.image_id, label_event_id=item.label_event_id,
                               class_id=item.class_id, split=split, fold=item.fold))
        s.commit()
        return legacy.id


def test_snapshot_health_matches_independent_counts(labelled, db):
    client = labelled.client
    copies, flagged = _add_near_duplicates_flag_and_small_class(labelled, db)
    fresh = freeze(client, "health", split={"val": 0.5, "seed": 0, "folds": 5})
    h = client.get(f"/api/snapshots/{fresh['id']}/health").json()
    assert h["leakage"]["groups"] == 0  # stable splits keep each copy with its original
    snap = {"id": _legacy_copy(db, fresh["id"], copies[:2])}
    h = client.get(f"/api/snapshots/{snap['id']}/health").json()
    got = items(client, snap["id"])
    want = _expected(client, got, flagged)

    assert h["total"] == want["total"] == 93
    assert {c["name"]: c["count"] for c in h["classes"]} == want["classes"]
    assert {(c["name"], s): n for c in h["classes"] for s, n in c["sources"].items() if n} == want["sources"]
    assert [b["count"] for b in h["confidence"]["bins"]] == want["confidence"]
    assert h["tags"]["tagged"] == want["tagged"] and h["tags"]["share"] == want["tagged"] / want["total"]
    assert h["tags"]["per_tag"] == want["per_tag"]
    assert [b["count"] for b in h["time"]["bins"]] == want["time"]
    assert h["time"]["unknown"] == want["time_unknown"] and h["time"]["median_ms"] == want["median_ms"]
    eff = h["effective"]
    assert (eff["raw"], eff["confident"], eff["unflagged"]) == (93, want["confident"], 92)
    assert eff["size"] == want["effective"] and eff["non_duplicate"] == want["non_duplicate"]
    assert eff["size"] < want["confident"]  # the copies count once
    assert (h["leakage"]["groups"], h["leakage"]["images"]) == (want["leak_groups"], want["leak_images"]) == (2, 4)
    kinds = {w["kind"]: w for w in h["warnings"]}
    assert kinds["small_class"]["class"] == "hat" and kinds["small_class"]["count"] == 2
    assert "span more than one split" in kinds["leakage"]["message"]
    assert sum(h["splits"].values()) == 93


def test_live_health_counts_the_library(labelled, db):
    client = labelled.client
    with db.writing() as s:
        s.get(Image, labelled.ids[0]).excluded = True
        s.commit()
    upload(client, [("extra.bmp", _bmp(100))], source="web")  # unlabelled
    h = client.get("/api/snapshots/live/health").json()
    assert h["library"] == {"images": 91, "labelled": 90, "unlabelled": 1, "excluded": 1}
    assert h["total"] == 89 and h["splits"] is None and h["leakage"] is None
    assert sum(c["count"] for c in h["classes"]) == 89
    assert h["tags"]["tagged"] == sum(1 for i, g in labelled.given.items() if g["tags"] and i != labelled.ids[0])
