"""current_label_tags and current_confidences (migration 0014) equal the current label events' tags and confidence
through every writer, and the tag and confidence filters of /api/images answer from them as from the events."""

from __future__ import annotations

from sqlalchemy import select, text

from app.db.models import CurrentConfidence, CurrentLabel, CurrentLabelTag, LabelEvent
from tests.factories import add_class, label, upload_fmnist

TAGS = ("blurred", "cluttered", "dark", "occluded", "odd angle")


def _recomputed(db) -> tuple[set[tuple[int, str]], dict[int, float]]:
    """(image, tag) pairs and confidences, the slow way: from each image's current label event."""
    with db.reading() as s:
        rows = s.execute(select(CurrentLabel.image_id, LabelEvent.confidence, LabelEvent.tags)
                         .join(LabelEvent, LabelEvent.id == CurrentLabel.event_id)).all()
    tags = {(image, tag) for image, _, listed in rows for tag in (listed or [])}
    return tags, {image: confidence for image, confidence, _ in rows if confidence is not None}


def _agree(client, db) -> tuple[set[tuple[int, str]], dict[int, float]]:
    tags, confidences = _recomputed(db)
    with db.reading() as s:
        assert set(s.execute(select(CurrentLabelTag.image_id, CurrentLabelTag.tag)).all()) == tags
        assert dict(s.execute(select(CurrentConfidence.image_id, CurrentConfidence.confidence)).all()) == confidences
    # The filters say the same, in the same order, with exact totals.
    for tag in TAGS:
        page = client.get("/api/images", params={"tag": tag, "limit": 1000}).json()
        want = sorted(image for image, t in tags if t == tag)
        assert [item["id"] for item in page["items"]] == want and page["total"] == len(want)
        assert all(tag in item["tags"] for item in page["items"])
    for low, high in ((0, 1), (0.5, 0.7), (0.9, 1), (0.95, 0.99)):
        page = client.get("/api/images", params={"min_confidence": low, "max_confidence": high, "limit": 1000}).json()
        want = sorted(image for image, c in confidences.items() if low <= c <= high)
        assert [item["id"] for item in page["items"]] == want and page["total"] == len(want)
    page = client.get("/api/images", params={"min_confidence": 0.5, "tag": "dark"}).json()
    assert [item["id"] for item in page["items"]] == sorted(
        image for image, t in tags if t == "dark" and confidences.get(image, -1) >= 0.5)
    # With a filter on the images row or the class too (the query then starts from images, not the tag rows).
    dark = client.get("/api/images", params={"tag": "dark", "limit": 1000}).json()["items"]
    page = client.get("/api/images", params={"tag": "dark", "status": "labelled", "source": "fmnist"}).json()
    assert [item["id"] for item in page["items"]] == [item["id"] for item in dark if item["class_id"] is not None]
    for item in dark[:1]:
        page = client.get("/api/images", params={"tag": "dark", "class": item["class_id"], "max_confidence": 1}).json()
        assert [i["id"] for i in page["items"]] == [
            i["id"] for i in dark if i["class_id"] == item["class_id"] and i["id"] in confidences]
    return tags, confidences


def test_kept_tags_and_confidences_follow_labels_undo_bulk_merge_and_raw_sql(client, db):
    ids = upload_fmnist(client, 12)
    assert _agree(client, db) == (set(), {})
    for name in ("shirt", "coat", "bag"):
        add_class(client, name)

    label(client, ids[0], "shirt", confidence=0.6, tags=["dark", "blurred"])
    label(client, ids[1], "coat", confidence=0.95, tags=["dark"])
    label(client, ids[2], "bag", confidence=0.55, tags=["odd angle"])
    label(client, ids[3], "bag", tags=[])
    tags, confidences = _agree(client, db)
    assert (ids[0], "blurred") in tags and confidences[ids[1]] == 0.95 and (ids[2], "odd angle") in tags

    # A relabel replaces the tags and confidence; an undo brings the earlier ones back, or none.
    label(client, ids[0], "coat", confidence=0.99, tags=["occluded"])
    tags, confidences = _agree(client, db)
    assert (ids[0], "dark") not in tags and (ids[0], "occluded") in tags and confidences[ids[0]] == 0.99
    event = client.get(f"/api/images/{ids[0]}").json()["label"]["id"]
    assert client.post(f"/api/images/{ids[0]}/labels/undo", json={"event": event}).status_code == 201
    tags, confidences = _agree(client, db)
    assert (ids[0], "dark") in tags and confidences[ids[0]] == 0.6
    event = client.get(f"/api/images/{ids[2]}").json()["label"]["id"]
    assert client.post(f"/api/images/{ids[2]}/labels/undo", json={"event": event}).status_code == 201
    tags, confidences = _agree(client, db)
    assert not any(image == ids[2] for image, _ in tags)

    # Bulk actions write many rows per statement (PostgreSQL's triggers run once per statement); and their undo.
    r = client.post("/api/labels/bulk", json={"images": ids[1:9], "class": "bag", "confidence": 0.65,
                                               "tags": ["cluttered", "dark"], "annotator": "ana"})
    assert r.status_code == 201, r.text
    tags, confidences = _agree(client, db)
    assert {image for image, t in tags if t == "cluttered"} == set(ids[1:9])
    undo = client.post(f"/api/labels/bulk/{r.json()['id']}/undo", json={"annotator": "ana"})
    assert undo.status_code in (200, 201), undo.text
    tags, confidences = _agree(client, db)
    assert confidences[ids[1]] == 0.95 and not any(t == "cluttered" for _, t in tags)

    # A taxonomy merge and a retire move current labels with set-based SQL.
    r = client.post("/api/taxonomy/changes", json={"op": "merge", "classes": ["shirt", "coat"], "into": "top"})
    assert r.status_code == 201, r.text
    r = client.post("/api/taxonomy/changes", json={"op": "retire", "class": "bag"})
    assert r.status_code == 201, r.text
    _agree(client, db)

    # Writers that bypass the app: a current label pointed at an older event, and one removed.
    with db.writing() as s:
        older = s.scalar(select(LabelEvent.id).where(LabelEvent.image_id == ids[1]).order_by(LabelEvent.id).limit(1))
        s.execute(text("UPDATE current_labels SET event_id = :e, class_id = (SELECT class_id FROM label_events "
                       "WHERE id = :e) WHERE image_id = :i"), {"e": older, "i": ids[1]})
        s.execute(text("DELETE FROM current_labels WHERE image_id = :i"), {"i": ids[0]})
        s.commit()
    tags, confidences = _agree(client, db)
    assert ids[0] not in confidences and confidences[ids[1]] == 0.95


def test_bad_confidence_bounds_are_refused(client):
    for params in ({"min_confidence": 1.5}, {"max_confidence": -0.1}):
        r = client.get("/api/images", params=params)
        assert r.status_code in (400, 422), r.text
