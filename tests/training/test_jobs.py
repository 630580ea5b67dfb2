"""Jobs over HTTP, without training: validation, cancel, claim and reap on a real SQLite file."""

from __future__ import annotations

import time

import pytest

from app.training import jobs
from tests.factories import labelled_snapshot


@pytest.fixture
def snap(client):
    return labelled_snapshot(client, 30, classes=3, folds=3)


@pytest.mark.parametrize(
    "config, words",
    [
        ({"model": "vgg99"}, "model must be one of"),
        ({"epochs": 0}, "epochs must be"),
        ({"image_size": "big"}, "image_size must be"),
        ({"folds": 4}, "frozen with 3 folds"),
        ({"colour": 1}, "unknown config key"),
    ],
)
def test_bad_config_is_refused(client, snap, config, words):
    r = client.post("/api/jobs", json={"snapshot": snap["id"], "config": config})
    assert r.status_code == 422 and words in r.json()["detail"], r.text
    assert client.get("/api/jobs").json()["items"] == []


def test_snapshot_with_one_class_or_small_class_is_refused(client):
    one = labelled_snapshot(client, 10, classes=1, folds=2, name="one")
    r = client.post("/api/jobs", json={"snapshot": one["id"]})
    assert r.status_code == 422 and "at least 2" in r.json()["detail"]
    many = labelled_snapshot(client, 12, classes=3, folds=5, name="folds", start=500)
    r = client.post("/api/jobs", json={"snapshot": many["id"]})
    assert r.status_code == 422 and "fewer than the 5 folds" in r.json()["detail"]
    assert client.post("/api/jobs", json={"snapshot": "nope"}).status_code == 404


def test_queued_job_cancels_at_once_and_finished_cannot(client, snap):
    job = client.post("/api/jobs", json={"snapshot": snap["name"], "config": {"epochs": 2}}).json()
    assert job["status"] == "queued"
    body = client.get(f"/api/jobs/{job['id']}").json()
    assert body["config"]["epochs"] == 2 and body["config"]["folds"] == 3 and body["progress"] == 0
    assert client.post(f"/api/jobs/{job['id']}/cancel").json()["status"] == "cancelled"
    assert client.post(f"/api/jobs/{job['id']}/cancel").status_code == 409
    assert client.get("/api/jobs/999").status_code == 404


def test_claim_heartbeat_reap_and_requeue(client, snap, db, settings):
    job_id = client.post("/api/jobs", json={"snapshot": snap["id"]}).json()["id"]
    with db.writing() as s:
        assert jobs.claim(s, "w1").id == job_id
    with db.writing() as s:
        assert jobs.claim(s, "w2") is None           # nothing else queued
    with db.writing() as s:
        assert jobs.heartbeat(s, job_id, "w1", progress=0.5, message="fold 1/3")
        assert not jobs.heartbeat(s, job_id, "w2")     # not its job
    time.sleep(1.1)
    with db.writing() as s:
        assert jobs.reap(s, stale_after_s=1) == [job_id]
    body = client.get(f"/api/jobs/{job_id}").json()
    assert body["status"] == "queued" and "stopped responding" in body["log"][-1]["message"]
    with db.writing() as s:
        assert jobs.claim(s, "w2").attempts == 2
    with db.writing() as s:
        assert not jobs.finish(s, job_id, "w1", status="succeeded")  # w1 lost it: its result is refused
    client.post(f"/api/jobs/{job_id}/cancel")
    with db.writing() as s:
        assert not jobs.heartbeat(s, job_id, "w2")     # a cancel stops the trainer via the heartbeat
        assert jobs.finish(s, job_id, "w2", status="cancelled")
    assert client.get(f"/api/jobs/{job_id}").json()["status"] == "cancelled"
