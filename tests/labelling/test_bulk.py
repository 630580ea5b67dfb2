"""Bulk relabel over HTTP: a preview that states the change, events of kind "bulk", and an undo of the whole
action with new events that restores each image's label exactly, skipping (and counting) images labelled since."""

from __future__ import annotations

import pytest

from tests.databases import ON_POSTGRES, refused
from tests.factories import add_class, label, upload_fmnist


@pytest.fixture
def setup(client):
    for name in ("coat", "shirt", "bag"):
        add_class(client, name)
    ids = upload_fmnist(client, 8)
    label(client, ids[0], "coat", confidence=0.6, tags=["dark"], note="collar", annotator="ana")
    label(client, ids[1], "coat")
    label(client, ids[2], "bag")
    return client, ids


def _image(client, image_id):
    return client.get(f"/api/images/{image_id}").json()


def test_dry_run_states_the_change_and_writes_nothing(setup):
    client, ids = setup
    before = [_image(client, i)["history"] for i in ids]
    r = client.post("/api/labels/bulk", json={"images": ids[:6], "class": "shirt", "dry_run": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == 6 and body["class"] == "shirt"
    assert body["from"] == [{"class": None, "count": 3}, {"class": "coat", "count": 2}, {"class": "bag", "count": 1}]
    assert body["text"] == "Relabel 6 images: 3 unlabelled, 2 coat, 1 bag → shirt" and body["blocked"] == []
    assert [_image(client, i)["history"] for i in ids] == before
    assert client.get("/api/labels/bulk").json()["items"] == []


def test_a_filter_preview_counts_every_match(setup):
    client, ids = setup
    r = client.post("/api/labels/bulk", json={"filter": {"status": "unlabelled"}, "class": "bag", "dry_run": True})
    assert r.json()["count"] == 5 and r.json()["text"] == "Relabel 5 images: 5 unlabelled → bag"


def test_apply_writes_bulk_events_and_undo_restores_exactly(setup):
    client, ids = setup
    before = {i: _image(client, i)["label"] for i in ids[:4]}
    r = client.post("/api/labels/bulk", json={"images": ids[:4], "class": "shirt", "confidence": 0.8,
                                              "annotator": "bo", "expect": 4})
    assert r.status_code == 201, r.text
    action = r.json()
    assert action["kind"] == "bulk" and action["count"] == 4 and action["labelled"] == 4
    for i in ids[:4]:
        last = _image(client, i)["history"][-1]
        assert (last["kind"], last["class"], last["confidence"], last["annotator"]) == ("bulk", "shirt", 0.8, "bo")

    u = client.post(f"/api/labels/bulk/{action['id']}/undo", json={"annotator": "bo"})
    assert u.status_code == 201, u.text
    assert (u.json()["undone"], u.json()["skipped"], u.json()["undoes"]) == (4, 0, action["id"])
    for i in ids[:4]:
        image = _image(client, i)
        kinds = [e["kind"] for e in image["history"]]
        assert kinds[-2:] == ["bulk", "undo"]  # nothing deleted: the bulk event stays in the history
        now, was = image["label"], before[i]
        if was is None:
            assert now is None
        else:
            keys = ("class", "confidence", "tags")
            assert {k: now[k] for k in keys} == {k: was[k] for k in keys}
    assert _image(client, ids[0])["history"][-1]["note"] == "collar"

    again = client.post(f"/api/labels/bulk/{action['id']}/undo", json={})
    assert again.status_code == 409 and "undone already" in again.json()["detail"]
    listed = client.get("/api/labels/bulk").json()["items"]
    assert [(a["kind"], a["undone_by"]) for a in listed] == [("undo", None), ("bulk", u.json()["id"])]


def test_undo_skips_images_labelled_since_and_says_how_many(setup):
    client, ids = setup
    action = client.post("/api/labels/bulk", json={"images": ids[:3], "class": "shirt"}).json()
    label(client, ids[1], "bag", annotator="cy")  # someone's later decision: the undo must not overwrite it
    u = client.post(f"/api/labels/bulk/{action['id']}/undo", json={})
    assert u.status_code == 201, u.text
    assert (u.json()["undone"], u.json()["skipped"], u.json()["skipped_images"]) == (2, 1, [ids[1]])
    assert "1 image changed since" in u.json()["text"]
    assert _image(client, ids[1])["label"]["class"] == "bag"
    assert [_image(client, i)["label"]["class"] for i in (ids[0], ids[2])] == ["coat", "bag"]


def test_undo_refuses_when_every_image_changed_since(setup):
    client, ids = setup
    action = client.post("/api/labels/bulk", json={"images": ids[3:5], "class": "shirt"}).json()
    for i in ids[3:5]:
        label(client, i, "coat")
    u = client.post(f"/api/labels/bulk/{action['id']}/undo", json={})
    assert u.status_code == 409 and "nothing was undone" in u.json()["detail"]
    assert [_image(client, i)["label"]["class"] for i in ids[3:5]] == ["coat", "coat"]
    assert client.post(f"/api/labels/bulk/{action['id']}/undo", json={}).status_code == 409  # still refused
    assert client.post("/api/labels/bulk/4242/undo", json={}).status_code == 404


def test_a_changed_selection_is_refused_and_no_class_is_refused(setup):
    client, ids = setup
    r = client.post("/api/labels/bulk", json={"filter": {"status": "unlabelled"}, "class": "bag", "expect": 4})
    assert r.status_code == 409 and "selection changed" in r.json()["detail"]
    assert client.post("/api/labels/bulk", json={"images": ids[:2]}).status_code == 422
    assert client.post("/api/labels/bulk", json={"images": ids[:2], "class": "nope"}).status_code == 404
    none = client.post("/api/labels/bulk", json={"filter": {"class": "shirt"}, "class": "bag"})
    assert none.status_code == 422 and "no images match" in none.json()["detail"]
    assert client.get("/api/labels/bulk").json()["items"] == []
    assert _image(client, ids[5])["label"] is None


def test_an_undo_cannot_be_undone_and_bulk_rows_are_append_only(setup, settings):
    client, ids = setup
    action = client.post("/api/labels/bulk", json={"images": ids[:2], "class": "shirt"}).json()
    undo = client.post(f"/api/labels/bulk/{action['id']}/undo", json={}).json()
    r = client.post(f"/api/labels/bulk/{undo['id']}/undo", json={})
    assert r.status_code == 409 and "is the undo of" in r.json()["detail"]
    for table in ("bulk_actions", "bulk_label_items"):
        sqls = [f"UPDATE {table} SET image_id = image_id" if table == "bulk_label_items"
                else f"UPDATE {table} SET count = 0", f"DELETE FROM {table}"]
        for sql in sqls + ([f"TRUNCATE {table} CASCADE"] if ON_POSTGRES else []):
            assert "append-only" in refused(settings.database_url, sql)


def test_a_bulk_relabel_that_breaks_a_re_review_is_refused_whole(setup):
    client, ids = setup
    r = client.post("/api/taxonomy/changes", json={"op": "split", "class": "coat", "into": ["parka", "blazer"]})
    assert r.status_code == 201, r.text  # ids[0] and ids[1] now wait in re-review: parka or blazer only
    before = [_image(client, i)["history"] for i in ids[:4]]
    preview = client.post("/api/labels/bulk", json={"images": ids[:4], "class": "shirt", "dry_run": True}).json()
    assert preview["blocked"] == ids[:2]
    assert preview["text"].endswith(f". 2 of them wait in re-review for other classes than shirt (e.g. #{ids[0]}): "
                                    "leave them out")
    r = client.post("/api/labels/bulk", json={"images": ids[:4], "class": "shirt"})
    assert r.status_code == 422 and "re-review" in r.json()["detail"]
    assert [_image(client, i)["history"] for i in ids[:4]] == before  # all or nothing
    assert client.get("/api/labels/bulk").json()["items"] == []
    ok = client.post("/api/labels/bulk", json={"images": ids[:2], "class": "parka"})
    assert ok.status_code == 201
    assert client.get("/api/flags", params={"status": "open", "kind": "rereview"}).json()["total"] == 0
    undo = client.post(f"/api/labels/bulk/{ok.json()['id']}/undo", json={})
    assert undo.status_code == 201 and undo.json()["undone"] == 2
    # Undoing the labels that settled the re-review puts both images back in it.
    assert client.get("/api/flags", params={"status": "open", "kind": "rereview"}).json()["total"] == 2


def test_undo_skips_images_whose_earlier_class_was_retired_since(setup):
    client, ids = setup
    action = client.post("/api/labels/bulk", json={"images": ids[1:4], "class": "shirt"}).json()
    assert client.post("/api/taxonomy/changes", json={"op": "retire", "class": "coat"}).status_code == 201
    u = client.post(f"/api/labels/bulk/{action['id']}/undo", json={})
    assert u.status_code == 201, u.text
    assert (u.json()["undone"], u.json()["skipped_images"]) == (2, [ids[1]])  # coat is gone: shirt stays
    labels = [_image(client, i)["label"] for i in ids[1:4]]
    assert [lab and lab["class"] for lab in labels] == ["shirt", "bag", None]
