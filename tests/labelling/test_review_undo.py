"""Undoing a review decision: new events restore the label, the flag opens again, nothing is deleted."""

from __future__ import annotations

import pytest

from tests.factories import label, labelled_snapshot
from tests.quality.helpers import confident_probs, finish_job, snapshot_labels


@pytest.fixture
def flagged(client, db):
    """A finished job whose model believes four of 30 labelled images are another class: four mislabel flags."""
    snap = labelled_snapshot(client, 30, classes=3, folds=3)
    _, labels = snapshot_labels(client, snap)
    ids = sorted(labels)
    wrong = {ids[i]: (labels[ids[i]] + 1) % 3 for i in (2, 9, 16, 23)}
    finish_job(client, db, snap, confident_probs(labels, 3, wrong=wrong))
    items = client.get("/api/flags", params={"kind": "mislabel"}).json()["items"]
    assert len(items) == 4
    return items


def _resolve(client, flag, action, **body):
    r = client.post(f"/api/flags/{flag['id']}/resolve", json={"action": action, "annotator": "rev", **body})
    assert r.status_code == 200, r.text
    return r.json()


def _undo(client, flag, who="rev"):
    return client.post(f"/api/flags/{flag['id']}/undo", json={"annotator": who})


def _image(client, flag):
    return client.get(f"/api/images/{flag['image']}").json()


def test_undo_a_relabel_restores_the_label_and_reopens_the_flag(client, flagged):
    flag = flagged[0]
    decided = _resolve(client, flag, "relabel", **{"class": flag["suggested"]})
    assert _image(client, flag)["label"]["class"] == flag["suggested"]

    r = _undo(client, flag, "uma")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["flag"]["status"] == "open" and body["flag"]["resolution"] is None and body["reopened"] == [flag["id"]]
    undone = body["flag"]["details"]["undone"]
    assert [(u["resolution"], u["by"], u["event"], u["undone_by"]) for u in undone] == [
        ("relabel", "rev", decided["event"], "uma")]
    img = _image(client, flag)
    assert img["label"]["class"] == flag["given"]
    kinds = [(e["kind"], e["class"], e["reverts"]) for e in img["history"]][-2:]
    assert kinds == [("review", flag["suggested"], None), ("undo", flag["given"], decided["event"])]
    # Open again: decided anew like any flag, and the review page shows it.
    assert _resolve(client, flag, "keep")["flag"]["resolution"] == "keep"
    assert _image(client, flag)["label"]["class"] == flag["given"]


def test_undo_an_exclusion_and_an_ambiguous_mark(client, flagged):
    excl, amb = flagged[0], flagged[1]
    _resolve(client, excl, "exclude")
    assert _image(client, excl)["excluded"] is True
    assert _undo(client, excl).status_code == 200
    assert _image(client, excl)["excluded"] is False
    assert client.get(f"/api/flags/{excl['id']}").json()["status"] == "open"

    _resolve(client, amb, "ambiguous")
    history = _image(client, amb)["history"]
    r = _undo(client, amb)
    assert r.status_code == 200 and r.json()["event"] is None
    assert _image(client, amb)["history"] == history           # no label change to take back
    assert client.get(f"/api/flags/{amb['id']}").json()["status"] == "open"


def test_what_cannot_be_undone_is_refused_and_changes_nothing(client, flagged):
    flag = flagged[0]
    r = _undo(client, flag)                                     # still open: no decision yet
    assert r.status_code == 409 and "no review decision to undo" in r.json()["detail"]
    assert client.post("/api/flags/99999/undo", json={}).status_code == 404
    assert client.post(f"/api/flags/{flag['id']}/undo", json={"bogus": 1}).status_code == 422

    _resolve(client, flag, "relabel", **{"class": flag["suggested"]})
    label(client, flag["image"], flag["given"], annotator="someone else")   # labelled since the decision
    before_flag = client.get(f"/api/flags/{flag['id']}").json()
    before_history = _image(client, flag)["history"]
    r = _undo(client, flag)
    assert r.status_code == 409 and "not the current label" in r.json()["detail"]
    assert client.get(f"/api/flags/{flag['id']}").json() == before_flag     # not reopened
    assert _image(client, flag)["history"] == before_history

    other = flagged[1]
    _resolve(client, other, "keep")
    assert _undo(client, other).status_code == 200
    assert _undo(client, other).status_code == 409                          # once
