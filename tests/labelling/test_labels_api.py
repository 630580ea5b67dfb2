"""Label events over HTTP: append-only history, derived current label, undo, validation."""

from __future__ import annotations

import pytest

from tests.databases import ON_POSTGRES, refused
from tests.factories import add_class, label, upload_fmnist


@pytest.fixture
def setup(client):
    shirt = add_class(client, "shirt", description="Upper body, buttons or collar")
    shoe = add_class(client, "shoe")
    ids = upload_fmnist(client, 6)
    return client, shirt, shoe, ids


def test_label_then_relabel_keeps_both_events(setup):
    client, shirt, shoe, ids = setup
    first = label(client, ids[0], "shirt", confidence=0.6, tags=["blurred"], note="collar?", annotator="ana", ms=1500)
    assert first["class"] == "shirt" and first["kind"] == "manual" and first["taxonomy_version"] == 2
    label(client, ids[0], shoe["id"], annotator="bo")

    body = client.get(f"/api/images/{ids[0]}").json()
    assert body["label"]["class"] == "shoe" and body["label"]["class_id"] == shoe["id"]
    assert body["label"]["annotator"] == "bo"
    assert [e["class"] for e in body["history"]] == ["shirt", "shoe"]
    old = body["history"][0]
    assert (old["confidence"], old["tags"], old["note"], old["ms"], old["annotator"]) == (0.6, ["blurred"], "collar?", 1500, "ana")
    assert old["created_at"].endswith("Z")


def test_undo_restores_previous_label_and_first_undo_unlabels(setup):
    client, shirt, shoe, ids = setup
    e1 = label(client, ids[1], "shirt", confidence=0.3)
    e2 = label(client, ids[1], "shoe")
    r = client.post(f"/api/images/{ids[1]}/labels/undo", json={"event": e2["id"], "annotator": "ana"})
    assert r.status_code == 201
    assert r.json()["kind"] == "undo" and r.json()["reverts"] == e2["id"]
    label_now = client.get(f"/api/images/{ids[1]}").json()["label"]
    assert label_now["class"] == "shirt" and label_now["confidence"] == 0.3

    # Undoing an event that is no longer current would discard a later decision.
    stale = client.post(f"/api/images/{ids[1]}/labels/undo", json={"event": e1["id"]})
    assert stale.status_code == 409

    e3 = label(client, ids[2], "shirt")
    client.post(f"/api/images/{ids[2]}/labels/undo", json={"event": e3["id"]})
    body = client.get(f"/api/images/{ids[2]}").json()
    assert body["label"] is None and len(body["history"]) == 2
    assert client.get("/api/images", params={"status": "unlabelled"}).json()["total"] == 5


@pytest.mark.parametrize(
    "payload, status, words",
    [
        ({"class": "nope"}, 404, "no class"),
        ({"class": "shirt", "confidence": 1.5}, 422, "confidence"),
        ({"class": "shirt", "confidence": "very"}, 422, "confidence"),
        ({"class": "shirt", "tags": ["sparkly"]}, 422, "unknown tag"),
        ({"class": "shirt", "ms": -5}, 422, "ms"),
        ({"class": "shirt", "note": "x" * 2001}, 422, "notes"),
        ({"confidence": 1}, 422, "class"),
        ({"class": "shirt", "colour": "red"}, 422, "colour"),
    ],
)
def test_bad_label_is_refused_and_writes_nothing(setup, payload, status, words):
    client, *_ , ids = setup
    r = client.post(f"/api/images/{ids[0]}/labels", json=payload)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]
    assert client.get(f"/api/images/{ids[0]}").json()["history"] == []


def test_label_missing_image_is_404(setup):
    client, *_ = setup
    r = client.post("/api/images/99999/labels", json={"class": "shirt"})
    assert r.status_code == 404 and "99999" in r.json()["detail"]


def test_label_events_are_append_only_in_the_database(setup, settings):
    client, shirt, shoe, ids = setup
    label(client, ids[0], "shirt")
    sqls = ["UPDATE label_events SET class_id = NULL", "DELETE FROM label_events"]
    for sql in sqls + (["TRUNCATE label_events CASCADE"] if ON_POSTGRES else []):
        assert "append-only" in refused(settings.database_url, sql)


def test_bulk_by_ids_and_by_filter(setup):
    client, shirt, shoe, ids = setup
    r = client.post("/api/labels/bulk", json={"images": ids[:2], "class": "shirt", "annotator": "ana"})
    assert r.status_code == 201 and r.json()["labelled"] == 2 and r.json()["kind"] == "bulk"
    r = client.post("/api/labels/bulk", json={"filter": {"status": "unlabelled"}, "class": "shoe", "confidence": 0.6})
    assert r.json()["labelled"] == 4
    shoes = client.get("/api/images", params={"class": "shoe"}).json()
    assert shoes["total"] == 4 and {i["id"] for i in shoes["items"]} == set(ids[2:])

    bad = client.post("/api/labels/bulk", json={"images": [ids[0], 424242], "class": "shoe"})
    assert bad.status_code == 404
    assert client.get(f"/api/images/{ids[0]}").json()["label"]["class"] == "shirt"  # all or nothing
    both = client.post("/api/labels/bulk", json={"images": [ids[0]], "filter": {}, "class": "shoe"})
    assert both.status_code == 422


def test_image_filters(setup):
    client, shirt, shoe, ids = setup
    upload_fmnist(client, 2, start=100, source="web")
    label(client, ids[0], "shirt", confidence=0.3, tags=["dark", "occluded"])
    label(client, ids[1], "shirt", confidence=1.0, tags=["dark"])
    label(client, ids[2], "shoe", confidence=0.6)

    def total(**params):
        r = client.get("/api/images", params=params)
        assert r.status_code == 200, r.text
        return r.json()["total"]

    assert total() == 8
    assert total(source="web") == 2
    assert total(status="labelled") == 3 and total(status="unlabelled") == 5
    assert total(**{"class": "shirt"}) == 2
    assert total(tag="dark") == 2 and total(tag="occluded") == 1
    assert total(max_confidence=0.6) == 2 and total(min_confidence=0.9) == 1
    page = client.get("/api/images", params={"limit": 3, "offset": 3}).json()
    assert [i["id"] for i in page["items"]] == ids[3:6]
    assert client.get("/api/images", params={"status": "maybe"}).status_code == 422
    assert client.get("/api/images", params={"limit": 0}).status_code == 422


def test_tags_are_editable(client):
    r = client.post("/api/tags", json={"name": "Motion Blur", "key": "m"})
    assert r.status_code == 201 and r.json()["name"] == "motion blur"
    assert client.post("/api/tags", json={"name": "glare", "key": "q"}).status_code == 422  # q = sure
    assert client.post("/api/tags", json={"name": "glare", "key": "m"}).status_code == 422  # taken
    names = [t["name"] for t in client.get("/api/tags").json()["items"]]
    assert names == ["blurred", "occluded", "dark", "odd angle", "cluttered", "motion blur"]
    assert client.post("/api/tags/dark/retire").status_code == 200
    assert "dark" not in [t["name"] for t in client.get("/api/tags").json()["items"]]
