"""The real worker process on a tiny real snapshot: train, stream, cancel, die, share the queue."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.factories import labelled_snapshot
from tests.workers import FAST, finished, start_worker, stop, wait_for


@pytest.fixture
def snap(client):
    return labelled_snapshot(client, 90, classes=3, folds=3)


def test_worker_trains_and_writes_out_of_sample_predictions(client, settings, snap):
    job_id = client.post("/api/jobs", json={"snapshot": snap["id"], "config": FAST}).json()["id"]
    worker = start_worker(settings.data_dir)
    try:
        body = wait_for(client, job_id, finished)
    finally:
        stop(worker)
    assert body["status"] == "succeeded", body["error"]
    assert body["progress"] == 1 and body["attempts"] == 1 and body["device"] == "cpu"
    stages = {e["stage"] for e in body["epochs"]}
    assert len(stages) == 4 and all("train_loss" in e for e in body["epochs"])   # 3 folds + final
    m = body["metrics"]
    assert m["accuracy"] > 0.5 and len(m["confusion"]) == 3 and set(m["per_source"]) == {"fmnist"}

    preds = client.get(f"/api/jobs/{job_id}/predictions").json()
    assert preds["classes"] == sorted(preds["classes"]) and len(preds["classes"]) == 3
    items = {p["image"]: p for p in preds["items"] if p["role"] == "oof"}
    snapshot_images = {i["image"] for i in client.get(f"/api/snapshots/{snap['id']}/items").json()["items"]}
    assert set(items) == snapshot_images
    assert all(p["out_of_sample"] and abs(sum(p["probs"]) - 1) < 1e-3 for p in items.values())
    model = client.get(f"/api/jobs/{job_id}/model")
    assert model.status_code == 200 and len(model.content) > 1000
    assert "Job #" in client.get(f"/jobs/{job_id}", headers={"Accept": "text/html"}).text


def test_cancel_a_running_job_and_the_worker_goes_on(client, settings, snap):
    slow = client.post("/api/jobs", json={"snapshot": snap["id"], "config": {**FAST, "epochs": 200}}).json()["id"]
    worker = start_worker(settings.data_dir)
    try:
        wait_for(client, slow, lambda b: len(b["epochs"]) >= 1)
        assert client.post(f"/api/jobs/{slow}/cancel").status_code == 200
        body = wait_for(client, slow, finished, timeout=30)
        assert body["status"] == "cancelled"
        assert client.get(f"/api/jobs/{slow}/predictions").json()["items"] == []   # nothing half-written
        quick = client.post("/api/jobs", json={"snapshot": snap["id"], "config": FAST}).json()["id"]
        assert wait_for(client, quick, finished)["status"] == "succeeded"
    finally:
        stop(worker)


def test_missing_file_fails_the_job_clearly_and_the_worker_goes_on(client, settings, snap):
    first = client.get(f"/api/snapshots/{snap['id']}/items").json()["items"][0]["image"]
    sha = client.get(f"/api/images/{first}").json()["sha256"]
    stored = next(Path(settings.store_dir).rglob(f"{sha}*"))
    stored.unlink()
    job_id = client.post("/api/jobs", json={"snapshot": snap["id"], "config": FAST}).json()["id"]
    worker = start_worker(settings.data_dir)
    try:
        body = wait_for(client, job_id, finished)
        assert body["status"] == "failed" and sha in body["error"] or stored.name in body["error"], body["error"]
        assert worker.poll() is None   # still serving
    finally:
        stop(worker)


def test_two_workers_never_share_a_job_and_a_killed_worker_is_replaced(client, settings, snap):
    ids = [client.post("/api/jobs", json={"snapshot": snap["id"], "config": FAST}).json()["id"] for _ in range(3)]
    a, b = start_worker(settings.data_dir, stale_after_s=3), start_worker(settings.data_dir, stale_after_s=3)
    try:
        running = wait_for(client, ids[0], lambda x: len(x["epochs"]) >= 1)
        victim = a if running["worker"].endswith(f":{a.pid}") else b
        os.kill(victim.pid, signal.SIGKILL)    # dies mid-job: no goodbye, no heartbeat
        bodies = [wait_for(client, i, finished, timeout=240) for i in ids]
    finally:
        stop(a)
        stop(b)
    assert [x["status"] for x in bodies] == ["succeeded"] * 3, [x["error"] for x in bodies]
    assert bodies[0]["attempts"] == 2 and "stopped responding" in " ".join(e["message"] for e in bodies[0]["log"])
    for body in bodies:
        starts = [e["message"].split(" starts")[0] for e in body["log"] if " starts:" in e["message"]]
        assert len(starts) == body["attempts"]   # one worker per attempt, never two at once
