"""Flags whose cause is gone close themselves ("cancelled", with why): label saves, review, the review page."""

from __future__ import annotations

from app.db.models import Flag, Image
from app.quality.flags import cancel_stale
from tests.factories import add_class, label, near_duplicates, upload, upload_fmnist


def _flags(client, kind: str) -> dict[int, dict]:
    items = client.get("/api/flags", params={"kind": kind, "status": "", "limit": 1000}).json()["items"]
    return {f["image"]: f for f in items}


def test_a_duplicate_flag_closes_when_a_plain_label_makes_the_group_agree(client):
    for name in ("shirt", "coat"):
        add_class(client, name)
    ids = [x["id"] for x in upload(client, near_duplicates(3), source="camera")["imported"]]
    for image_id, cls in zip(ids, ("shirt", "shirt", "coat")):
        label(client, image_id, cls)
    assert client.post("/api/quality/duplicates").json()["created"] == 3
    label(client, ids[2], "shirt")  # on /label, not through review: the conflict is gone all the same
    flags = _flags(client, "duplicate")
    assert {i: f["status"] for i, f in flags.items()} == dict.fromkeys(ids, "cancelled")
    assert all(f["details"]["cancelled_because"] == "the near-duplicates' labels agree now" for f in flags.values())
    assert client.post("/api/quality/duplicates").json()["created"] == 0


def test_mislabel_flags_close_on_a_persons_relabel_but_not_on_a_restatement(client, db):
    for name in ("shirt", "coat", "bag"):
        add_class(client, name)
    ids = upload_fmnist(client, 4)
    events = {i: label(client, i, "shirt")["id"] for i in ids}
    classes = {c["name"]: c["id"] for c in client.get("/api/taxonomy").json()["classes"]}
    with db.writing() as s:
        for i in ids:
            s.add(Flag(image_id=i, kind="mislabel", status="open", score=0.9, suggested_class_id=classes["coat"],
                       details={"label_event_id": events[i]}))
        s.commit()
    label(client, ids[0], "coat")   # to the suggested class
    label(client, ids[1], "bag")    # to another class, on purpose
    label(client, ids[2], "shirt")  # restated: still the reviewer's call
    flags = _flags(client, "mislabel")
    assert [flags[i]["status"] for i in ids] == ["cancelled", "cancelled", "open", "open"]
    assert "suggested class" in flags[ids[0]]["details"]["cancelled_because"]
    assert "relabelled by a person" in flags[ids[1]]["details"]["cancelled_because"]


def test_excluded_images_lose_their_flags_and_the_review_page_cleans_up(client, db):
    add_class(client, "shirt")
    ids = upload_fmnist(client, 3)
    for i in ids:
        label(client, i, "shirt")
    with db.writing() as s:
        for i in ids:
            s.add(Flag(image_id=i, kind="mislabel", status="open", score=0.5, details={}))
        s.get(Image, ids[0]).excluded = True  # excluded behind the app's back: only the safety net sees it
        s.commit()
    with db.writing() as s:
        assert len(cancel_stale(s, [ids[1]])) == 0  # nothing stale about image 1
        # A bulk action over more images than a statement may bind parameters for (SQLite: 32,766).
        assert len(cancel_stale(s, [ids[1], *range(10_000, 50_000)])) == 0
        s.commit()
    assert client.get("/review").status_code == 200
    flags = _flags(client, "mislabel")
    assert flags[ids[0]]["status"] == "cancelled"
    assert flags[ids[0]]["details"]["cancelled_because"] == "the image is excluded from the dataset"
    assert flags[ids[1]]["status"] == flags[ids[2]]["status"] == "open"
    # Excluding through review closes the image's other flags too.
    flag_id = flags[ids[1]]["id"]
    with db.writing() as s:
        s.add(Flag(image_id=ids[1], kind="rereview", status="open", details={"classes": []}))
        s.commit()
    r = client.post(f"/api/flags/{flag_id}/resolve", json={"action": "exclude", "annotator": "a"})
    assert r.status_code == 200, r.text
    assert _flags(client, "rereview")[ids[1]]["status"] == "cancelled"
