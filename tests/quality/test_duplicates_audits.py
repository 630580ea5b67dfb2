"""Near-duplicate conflict flags and blind re-label audits, end to end over HTTP."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from app.quality.audits import pick_audits
from app.timeutil import utcnow
from tests.factories import add_class, label, near_duplicates, upload, upload_fmnist


def test_duplicate_conflicts_are_flagged_and_settled(client):
    for name in ("shirt", "coat"):
        add_class(client, name)
    report = upload(client, near_duplicates(3), source="camera")
    ids = [x["id"] for x in report["imported"]]
    others = upload_fmnist(client, 5, start=100, source="web")
    label(client, ids[0], "shirt")
    label(client, ids[1], "shirt")
    label(client, ids[2], "coat")
    for i in others:
        label(client, i, "coat")

    r = client.post("/api/quality/duplicates")
    assert r.status_code == 200 and r.json()["groups"] == 1 and r.json()["created"] == 3, r.text
    got = {f["image"]: f for f in client.get("/api/flags", params={"kind": "duplicate"}).json()["items"]}
    assert set(got) == set(ids)
    assert got[ids[2]]["score"] == 1.0 and got[ids[2]]["suggested"] == "shirt"     # the odd one out, first
    assert got[ids[0]]["score"] == 0.5 and got[ids[0]]["suggested"] is None
    assert client.post("/api/quality/duplicates").json()["created"] == 0             # one open flag per image

    # Relabelling the odd one out ends the conflict: the group's other flags are cancelled.
    flag = got[ids[2]]
    r = client.post(f"/api/flags/{flag['id']}/resolve", json={"action": "relabel", "class": "shirt", "annotator": "a"})
    assert r.status_code == 200, r.text
    every = client.get("/api/flags", params={"kind": "duplicate", "status": ""}).json()["items"]
    statuses = {f["image"]: f["status"] for f in every}
    assert statuses == {ids[2]: "resolved", ids[0]: "cancelled", ids[1]: "cancelled"}

    dup = client.get("/api/quality/duplicates").json()
    near = {(row["kind"], row["what"]): row for row in dup["rows"]}
    assert near[("near", "any")]["groups"] == 1 and near[("near", "label conflict")]["groups"] == 0
    assert near[("near", "cross source")]["groups"] == 0


def test_duplicates_across_sources_are_reported(client):
    variants = near_duplicates(2)
    a = upload(client, variants[:1], source="camera")["imported"][0]["id"]
    b = upload(client, variants[1:], source="web")["imported"][0]["id"]
    rows = {(r["kind"], r["what"]): r for r in client.get("/api/quality/duplicates").json()["rows"]}
    assert rows[("near", "cross source")]["examples"] == [[a, b]]


def test_blind_audit_round_trip(client, db, settings):
    for name in ("shirt", "coat", "bag"):
        add_class(client, name)
    ids = upload_fmnist(client, 40)
    for n, i in enumerate(ids):
        label(client, i, ("shirt", "coat", "bag")[n % 3], annotator="ana")
    with db.writing() as s:
        assert pick_audits(s, share=0.1, seed=1)["picked"] == 0                  # nothing is a day old yet
    with db.writing() as s:
        got = pick_audits(s, share=0.1, seed=1, now=utcnow() + timedelta(days=2))
    assert got == {"eligible": 40, "target": 4, "already": 0, "picked": 4}
    with db.writing() as s:   # idempotent: the share is already waiting
        assert pick_audits(s, share=0.1, seed=1, now=utcnow() + timedelta(days=2))["picked"] == 0
    pending = client.get("/api/flags", params={"kind": "audit", "status": "pending"}).json()["items"]
    assert len(pending) == 4
    assert client.get("/api/images", params={"status": "flagged"}).json()["total"] == 0   # pending is not flagged

    r = client.post(f"/api/flags/{pending[0]['id']}/resolve", json={"action": "keep"})
    assert r.status_code == 409 and "waiting for its blind answer" in r.json()["detail"]

    page = client.get("/label", params={"queue": "audit"})
    assert page.status_code == 200 and "left to audit blind" in page.text and 'class="guess' not in page.text
    assert "come back for a blind audit" in client.get("/label").text
    classes = {c["name"]: c["id"] for c in client.get("/api/taxonomy").json()["classes"]}
    first, second, *rest = [p["image"] for p in sorted(pending, key=lambda p: p["image"])]
    before = {i: client.get(f"/api/images/{i}").json()["label"] for i in (first, second)}

    # Same class: agreement. Through the labelling page, the way a person answers.
    r = client.post(f"/label/{first}", data={"class": str(classes[before[first]["class"]]), "queue": "audit",
                                             "annotator": "ana", "confidence": "1.0"})
    assert r.status_code == 200
    # Another class: a disagreement to review. Through the API.
    other = next(n for n in classes if n != before[second]["class"])
    r = client.post(f"/api/images/{second}/audit", json={"class": other, "annotator": "ana", "confidence": 0.6})
    assert r.status_code == 201 and r.json()["kind"] == "audit"
    for i in (first, second):
        now = client.get(f"/api/images/{i}").json()
        assert now["label"]["class"] == before[i]["class"]                     # an audit changes nothing
        assert now["history"][-1]["kind"] == "audit"
    assert client.post(f"/api/images/{first}/audit", json={"class": other}).status_code == 409   # answered

    open_ = client.get("/api/flags", params={"kind": "audit"}).json()["items"]
    assert [(f["image"], f["suggested"], f["given"]) for f in open_] == [(second, other, before[second]["class"])]
    stats = client.get("/api/quality/audits").json()
    assert stats["n"] == 2 and stats["agreement"] == 0.5 and stats["pending"] == 2
    assert len(stats["weeks"]) == 1 and stats["weeks"][0]["n"] == 2

    # The disagreement goes through review like any flag.
    r = client.post(f"/api/flags/{open_[0]['id']}/resolve", json={"action": "relabel", "class": other})
    assert r.status_code == 200
    assert client.get(f"/api/images/{second}").json()["label"]["class"] == other
    assert client.get("/api/quality/audits").json()["n"] == 2


def test_audit_pick_endpoint_uses_the_setting(client):
    add_class(client, "shirt")
    ids = upload_fmnist(client, 3)
    for i in ids:
        label(client, i, "shirt")
    r = client.post("/api/quality/audits", json={"older_than_hours": 0, "seed": 0})
    assert r.status_code == 200 and r.json()["eligible"] == 3 and r.json()["target"] == 0   # 5 % of 3 rounds to 0
    r = client.post("/api/quality/audits", json={"share": 0.5, "older_than_hours": 0})
    assert r.json()["picked"] == 2
    assert client.post("/api/quality/audits", json={"share": 2}).status_code == 422
    assert np.isclose(client.app.state.settings.audit_share, 0.05)


def test_undo_skips_an_audit_answer(client, db):
    for name in ("shirt", "coat", "bag"):
        add_class(client, name)
    [image] = upload_fmnist(client, 1)
    label(client, image, "shirt")
    with db.writing() as s:
        assert pick_audits(s, share=1.0, now=utcnow() + timedelta(days=2))["picked"] == 1
    assert client.post(f"/api/images/{image}/audit", json={"class": "bag"}).status_code == 201
    coat = label(client, image, "coat")
    r = client.post(f"/api/images/{image}/labels/undo", json={"event": coat["id"]})
    assert r.status_code == 201 and r.json()["label"]["class"] == "shirt"     # not the audit's "bag"
