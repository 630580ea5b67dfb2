"""Mislabel flags from a finished job, and resolving flags over HTTP: keep, relabel, ambiguous, exclude."""

from __future__ import annotations

import pytest

from tests.factories import add_class, labelled_snapshot
from tests.quality.helpers import confident_probs, finish_job, snapshot_labels


@pytest.fixture
def planted(client, db):
    """30 labelled images; the job's model confidently believes four of them are another class."""
    snap = labelled_snapshot(client, 30, classes=3, folds=3)
    classes, labels = snapshot_labels(client, snap)
    ids = sorted(labels)
    wrong = {ids[i]: (labels[ids[i]] + 1) % 3 for i in (2, 9, 16, 23)}
    job = finish_job(client, db, snap, confident_probs(labels, 3, wrong=wrong))
    return {"snap": snap, "classes": classes, "labels": labels, "wrong": wrong, "job": job}


def flags(client, **params) -> list[dict]:
    r = client.get("/api/flags", params={"kind": "mislabel", **params})
    assert r.status_code == 200, r.text
    return r.json()["items"]


def events(client, image: int) -> list[dict]:
    return client.get(f"/api/images/{image}").json()["history"]


def resolve(client, flag: dict, action: str, **body):
    return client.post(f"/api/flags/{flag['id']}/resolve", json={"action": action, "annotator": "rev", **body})


def test_a_finished_job_flags_its_planted_mislabels(client, planted):
    got = flags(client)
    assert {f["image"] for f in got} == set(planted["wrong"])
    names = planted["classes"]
    for f in got:
        assert f["given"] == names[planted["labels"][f["image"]]]
        assert f["suggested"] == names[planted["wrong"][f["image"]]]
        assert 0.5 < f["score"] <= 1 and f["details"]["job"] == planted["job"]
    assert [f["score"] for f in got] == sorted((f["score"] for f in got), reverse=True)
    flagged = client.get("/api/images", params={"status": "flagged"}).json()
    assert {i["id"] for i in flagged["items"]} == set(planted["wrong"])


def test_resolving_records_label_events_and_refuses_twice(client, planted):
    keep, relabel, ambiguous, exclude = flags(client)
    names = planted["classes"]

    before = events(client, keep["image"])
    r = resolve(client, keep, "keep")
    assert r.status_code == 200, r.text
    assert r.json()["flag"]["status"] == "resolved" and r.json()["flag"]["resolution"] == "keep"
    after = events(client, keep["image"])
    assert len(after) == len(before) + 1
    assert (after[-1]["kind"], after[-1]["class"], after[-1]["annotator"]) == ("review", keep["given"], "rev")
    assert r.json()["event"] == after[-1]["id"]

    again = resolve(client, keep, "relabel", **{"class": relabel["suggested"]})
    assert again.status_code == 409 and "already resolved" in again.json()["detail"]
    assert len(events(client, keep["image"])) == len(after)                      # nothing changed

    r = resolve(client, relabel, "relabel", **{"class": relabel["suggested"]})
    assert r.status_code == 200, r.text
    image = client.get(f"/api/images/{relabel['image']}").json()
    assert image["label"]["class"] == relabel["suggested"] and image["history"][-1]["kind"] == "review"

    n = len(events(client, ambiguous["image"]))
    r = resolve(client, ambiguous, "ambiguous")
    assert r.status_code == 200 and r.json()["event"] is None
    assert len(events(client, ambiguous["image"])) == n

    r = resolve(client, exclude, "exclude")
    assert r.status_code == 200
    assert client.get("/api/images", params={"status": "labelled"}).json()["total"] == 30
    assert next(i for i in client.get("/api/images", params={"limit": 100}).json()["items"]
                if i["id"] == exclude["image"])["excluded"] is True
    assert flags(client) == []
    resolved = flags(client, status="resolved")
    assert {f["resolution"] for f in resolved} == {"keep", "relabel", "ambiguous", "exclude"}
    assert all(f["resolved_by"] == "rev" for f in resolved)
    assert set(names)  # classes unchanged


def test_bad_decisions_are_refused_and_change_nothing(client, planted):
    flag = flags(client)[0]
    add_class(client, "extra")
    assert client.post("/api/taxonomy/changes", json={"op": "retire", "class": "extra"}).status_code == 201
    n = len(events(client, flag["image"]))
    r = resolve(client, flag, "relabel", **{"class": "extra"})
    assert r.status_code == 422 and "retired" in r.json()["detail"]
    assert resolve(client, flag, "relabel").status_code == 422                      # no class
    assert resolve(client, flag, "shrug").status_code == 422
    assert resolve(client, flag, "relabel", **{"class": "no such class"}).status_code == 404
    assert client.post("/api/flags/99999/resolve", json={"action": "keep"}).status_code == 404
    assert len(events(client, flag["image"])) == n
    assert client.get(f"/api/flags/{flag['id']}").json()["status"] == "open"


def test_rerunning_detection_respects_decisions(client, db, planted):
    keep, relabel, ambiguous, exclude = flags(client)
    for f, action in ((keep, "keep"), (ambiguous, "ambiguous"), (exclude, "exclude")):
        assert resolve(client, f, action).status_code == 200
    assert resolve(client, relabel, "relabel", **{"class": relabel["suggested"]}).status_code == 200

    r = client.post("/api/quality/mislabels", json={"job": planted["job"]})
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 0 and flags(client) == []                  # same job: nothing comes back

    # A newer job that is even surer a kept (or ambiguous) label is wrong flags it again; a weaker one does not.
    # The relabelled image now agrees with the model, and the excluded one is out of the dataset.
    snap, labels = planted["snap"], planted["labels"]
    finish_job(client, db, snap, confident_probs(labels, 3, wrong=planted["wrong"], sure=0.6, seed=1))
    assert flags(client) == []
    finish_job(client, db, snap, confident_probs(labels, 3, wrong=planted["wrong"], sure=0.99, seed=2))
    again = {f["image"]: f for f in flags(client)}
    assert set(again) == {keep["image"], ambiguous["image"]}
    assert again[keep["image"]]["details"]["previously_kept"] == keep["id"]


def test_one_open_flag_per_image_raised_only_by_a_stronger_job(client, db, planted):
    first = {f["image"]: f["score"] for f in flags(client)}
    finish_job(client, db, planted["snap"], confident_probs(planted["labels"], 3, wrong=planted["wrong"], sure=0.6))
    assert {f["image"]: f["score"] for f in flags(client)} == first
    finish_job(client, db, planted["snap"], confident_probs(planted["labels"], 3, wrong=planted["wrong"], sure=0.99))
    raised = {f["image"]: f["score"] for f in flags(client)}
    assert raised.keys() == first.keys() and all(raised[i] > first[i] for i in first)


def test_jobs_that_cannot_be_checked_get_a_clear_4xx(client, db):
    snap = labelled_snapshot(client, 12, classes=3, folds=2)
    empty = finish_job(client, db, snap, {})                               # the hook must not fail either
    r = client.post("/api/quality/mislabels", json={"job": empty})
    assert r.status_code == 409 and "no out-of-sample predictions" in r.json()["detail"]
    queued = client.post("/api/jobs", json={"snapshot": snap["id"], "config": {"epochs": 1}}).json()["id"]
    r = client.post("/api/quality/mislabels", json={"job": queued})
    assert r.status_code == 409 and "queued" in r.json()["detail"]
    assert client.post("/api/quality/mislabels", json={"job": 4242}).status_code == 404
    assert client.get("/api/flags", params={"kind": "mislabel"}).json()["total"] == 0


def test_a_merge_since_the_job_maps_classes_forward(client, db):
    snap = labelled_snapshot(client, 30, classes=3, folds=3)
    classes, labels = snapshot_labels(client, snap)
    ids = sorted(labels)
    # Believed to be the *merged* partner: after merging the two classes that is no longer a mistake.
    merged = [0, 1]
    partner = {ids[i]: 1 - labels[ids[i]] for i in range(30) if labels[ids[i]] in merged}
    plant = dict(list(partner.items())[:2])
    other = next(i for i in ids if labels[i] == 2)
    plant[other] = 0
    r = client.post("/api/taxonomy/changes", json={"op": "merge", "classes": [classes[0], classes[1]], "into": "top"})
    assert r.status_code == 201
    finish_job(client, db, snap, confident_probs(labels, 3, wrong=plant))
    got = flags(client)
    assert [(f["image"], f["given"], f["suggested"]) for f in got] == [(other, classes[2], "top")]


def test_a_merge_that_unites_label_and_suggestion_closes_the_flag(client, planted):
    classes, labels, wrong = planted["classes"], planted["labels"], planted["wrong"]
    moot = {i for i in wrong if {labels[i], wrong[i]} == {0, 1}}
    assert moot and len(moot) < len(wrong)
    r = client.post("/api/taxonomy/changes", json={"op": "merge", "classes": [classes[0], classes[1]], "into": "top"})
    assert r.status_code == 201, r.text
    assert client.get("/review").status_code == 200        # the review page's safety net runs
    assert {f["image"] for f in flags(client)} == set(wrong) - moot
    gone = flags(client, status="cancelled")
    assert {f["image"] for f in gone} == moot
    assert all("one class" in f["details"]["cancelled_because"] for f in gone)
