"""Exclude / include: append-only events with reasons, images.excluded and the per-source counts follow them,
in one image, in bulk (with a preview and an undo) and from a review decision."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from app.db.models import Flag
from tests.databases import ON_POSTGRES, refused
from tests.factories import add_class, label, upload_fmnist


def _counts(db) -> tuple[int, int, int, int]:
    with db.reading() as s:
        return tuple(int(n) for n in s.execute(text(
            "SELECT sum(images), sum(labelled), sum(excluded), sum(waiting) FROM source_counts")).one())


@pytest.fixture
def setup(client):
    add_class(client, "coat")
    ids = upload_fmnist(client, 6)
    label(client, ids[0], "coat")
    return client, ids


def test_exclude_then_include_are_events_and_counts_follow(setup, db):
    client, ids = setup
    assert _counts(db) == (6, 1, 0, 5)
    r = client.post(f"/api/images/{ids[1]}/exclude", json={"reason": "  a  photo of a screen ", "annotator": "ana"})
    assert r.status_code == 201, r.text
    assert (r.json()["excluded"], r.json()["reason"], r.json()["annotator"]) == (True, "a photo of a screen", "ana")
    assert _counts(db) == (6, 1, 1, 4)
    assert client.get(f"/api/images/{ids[1]}").json()["excluded"] is True

    again = client.post(f"/api/images/{ids[1]}/exclude", json={"reason": "twice"})
    assert again.status_code == 409 and "excluded already" in again.json()["detail"]
    back = client.post(f"/api/images/{ids[1]}/include", json={"reason": "it is a coat after all"})
    assert back.status_code == 201 and back.json()["excluded"] is False
    assert _counts(db) == (6, 1, 0, 5)
    image = client.get(f"/api/images/{ids[1]}").json()
    assert image["excluded"] is False
    assert [(e["excluded"], e["reason"]) for e in image["exclusions"]] == [
        (True, "a photo of a screen"), (False, "it is a coat after all")]
    assert client.post(f"/api/images/{ids[1]}/include", json={}).status_code == 409


def test_an_exclusion_needs_a_reason_and_an_image(setup, db):
    client, ids = setup
    r = client.post(f"/api/images/{ids[2]}/exclude", json={"reason": "   "})
    assert r.status_code == 422 and "reason" in r.json()["detail"]
    assert client.post("/api/images/4242/exclude", json={"reason": "x"}).status_code == 404
    assert client.post(f"/api/images/{ids[2]}/exclude", json={"reason": "x" * 2001}).status_code == 422
    assert _counts(db) == (6, 1, 0, 5)
    assert client.get(f"/api/images/{ids[2]}").json()["exclusions"] == []


def test_bulk_exclude_previews_applies_and_undoes(setup, db):
    client, ids = setup
    client.post(f"/api/images/{ids[5]}/exclude", json={"reason": "blank"})
    body = {"filter": {"status": "unlabelled"}, "action": "exclude", "reason": "scanned page"}
    preview = client.post("/api/labels/bulk", json={**body, "dry_run": True})
    assert preview.status_code == 200, preview.text
    assert preview.json()["text"] == "Exclude 4 images (1 of the 5 selected excluded already)"
    assert client.post("/api/labels/bulk", json={**body, "reason": ""}).status_code == 422
    applied = client.post("/api/labels/bulk", json={**body, "expect": 4})
    assert applied.status_code == 201, applied.text
    assert applied.json()["action"] == "exclude" and applied.json()["count"] == 4
    assert _counts(db) == (6, 1, 5, 0)

    client.post(f"/api/images/{ids[2]}/include", json={"reason": "this one stays"})  # changed since: kept
    undo = client.post(f"/api/labels/bulk/{applied.json()['id']}/undo", json={})
    assert undo.status_code == 201, undo.text
    assert (undo.json()["undone"], undo.json()["skipped"]) == (3, 1)
    assert _counts(db) == (6, 1, 1, 4)  # ids[5] was excluded before the bulk action and stays so
    hist = client.get(f"/api/images/{ids[3]}").json()["exclusions"]
    assert [(e["excluded"], e["bulk_action"]) for e in hist] == [(True, applied.json()["id"]),
                                                                 (False, undo.json()["id"])]
    nothing = client.post("/api/labels/bulk", json={"images": [ids[5]], "action": "exclude", "reason": "x"})
    assert nothing.status_code == 409 and "excluded already" in nothing.json()["detail"]
    with_class = {"images": [ids[1]], "action": "include", "class": "coat"}
    assert client.post("/api/labels/bulk", json=with_class).status_code == 422


def test_excluding_closes_open_flags_and_a_review_exclude_is_an_event(setup, db):
    client, ids = setup
    with db.writing() as s:
        s.add_all([Flag(image_id=ids[0], kind="mislabel", score=0.9, status="open", details={}),
                   Flag(image_id=ids[1], kind="mislabel", score=0.8, status="open", details={})])
        s.commit()
    flags = {f["image"]: f["id"] for f in client.get("/api/flags?status=open").json()["items"]}
    client.post(f"/api/images/{ids[1]}/exclude", json={"reason": "not clothing"})
    assert client.get("/api/flags?status=open").json()["total"] == 1  # the excluded image's flag closed itself

    r = client.post(f"/api/flags/{flags[ids[0]]}/resolve", json={"action": "exclude", "annotator": "rev"})
    assert r.status_code == 200, r.text
    events = client.get(f"/api/images/{ids[0]}").json()["exclusions"]
    assert [(e["excluded"], e["flag"], e["annotator"]) for e in events] == [(True, flags[ids[0]], "rev")]
    assert client.post(f"/api/flags/{flags[ids[0]]}/undo", json={"annotator": "rev"}).status_code in (200, 201)
    events = client.get(f"/api/images/{ids[0]}").json()["exclusions"]
    assert [e["excluded"] for e in events] == [True, False] and _counts(db)[2] == 1


def test_exclusion_events_are_append_only(setup, settings):
    client, ids = setup
    client.post(f"/api/images/{ids[1]}/exclude", json={"reason": "x"})
    sqls = ["UPDATE exclusion_events SET excluded = excluded", "DELETE FROM exclusion_events"]
    for sql in sqls + (["TRUNCATE exclusion_events CASCADE"] if ON_POSTGRES else []):
        assert "append-only" in refused(settings.database_url, sql)


def test_a_long_annotator_name_is_refused_not_stored(setup, db):
    client, ids = setup
    r = client.post(f"/api/images/{ids[1]}/exclude", json={"reason": "x", "annotator": "a" * 101})
    assert r.status_code == 422 and "at most 100" in r.json()["detail"]
    bulk = client.post("/api/labels/bulk", json={"images": ids[:2], "action": "exclude", "reason": "x",
                                                 "annotator": "a" * 101})
    assert bulk.status_code == 422
    assert _counts(db) == (6, 1, 0, 5)


def test_excluding_is_a_reviewers_decision_also_in_bulk(settings, db):
    from app.main import create_app
    from tests.logins import user_client

    settings.login = "required"
    app = create_app(settings)
    clients = {}
    for name, role in (("root", "admin"), ("lou", "labeller"), ("rita", "reviewer")):
        client, headers = user_client(app, db, name, role)
        client.headers.update(headers)
        clients[name] = client
    ids = upload_fmnist(clients["root"], 3)
    lou, rita = clients["lou"], clients["rita"]
    r = lou.post(f"/api/images/{ids[0]}/exclude", json={"reason": "x"})
    assert r.status_code == 403 and "reviewer" in r.json()["detail"]
    r = lou.post("/api/labels/bulk", json={"images": ids, "action": "exclude", "reason": "x"})
    assert r.status_code == 403 and "reviewer" in r.json()["detail"]
    assert _counts(db)[2] == 0
    r = rita.post("/api/labels/bulk", json={"images": ids[:2], "action": "exclude", "reason": "scans"})
    assert r.status_code == 201 and r.json()["annotator"] == "rita"
    r = rita.post(f"/api/images/{ids[2]}/exclude", json={"reason": "x", "annotator": "not me"})
    assert r.json()["annotator"] == "rita"
    assert _counts(db)[2] == 3
