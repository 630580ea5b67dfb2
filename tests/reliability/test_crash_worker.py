"""SIGKILL the only worker mid-job: the app requeues the job, shows nothing half-done as finished, keeps serving.

Real processes throughout: `loupe serve --no-worker` and a `loupe worker`
killed without warning. That another worker then finishes the requeued job
is tests/training/test_worker.py's two-worker test.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import pytest

from tests.factories import labelled_snapshot
from tests.reliability.helpers import check_database
from tests.servers import start_server, stop
from tests.workers import FAST, start_worker, wait_for

pytestmark = pytest.mark.slow

STALE_AFTER_S = 3


class Probe:
    """Polls the app the whole time: health, a page, and the job as the API shows it."""

    def __init__(self, base: str, job_id: int):
        self.base, self.job_id = base, job_id
        self.failures: list[str] = []
        self.seen: list[dict] = []
        self.polls = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run)

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=5) as client:
            while not self.done.wait(0.1):
                try:
                    for path in ("/healthz", "/jobs"):
                        r = client.get(path, headers={"Accept": "text/html"})
                        if r.status_code != 200:
                            self.failures.append(f"{path}: {r.status_code}")
                    job = client.get(f"/api/jobs/{self.job_id}").json()
                    preds = client.get(f"/api/jobs/{self.job_id}/predictions").json()["items"]
                    self.seen.append({**job, "n_predictions": len(preds)})
                    self.polls += 1
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join(timeout=10)


def test_sigkilled_worker_job_is_requeued_and_never_shown_finished(tmp_path):
    data = tmp_path / "data"
    server, base = start_server(data, env={"LOUPE_STALE_AFTER_S": str(STALE_AFTER_S)})
    workers = []
    try:
        with httpx.Client(base_url=base, timeout=60) as client:
            snap = labelled_snapshot(client, 90, classes=3, folds=3)
            job_id = client.post("/api/jobs", json={"snapshot": snap["id"], "config": FAST}).json()["id"]
            with Probe(base, job_id) as probe:   # from before the worker starts until the job is back in the queue
                workers.append(start_worker(data, stale_after_s=STALE_AFTER_S))
                running = wait_for(client, job_id, lambda b: b["status"] == "running" and len(b["epochs"]) >= 1)
                assert running["worker"].endswith(f":{workers[0].pid}")
                os.kill(workers[0].pid, signal.SIGKILL)   # mid-job: no goodbye, no more heartbeats
                workers[0].wait()
                killed_at = time.monotonic()
                # No worker is left to reap it: the app itself gives the job back to the queue.
                requeued = wait_for(client, job_id, lambda b: b["status"] != "running", timeout=STALE_AFTER_S + 20)
                waited = time.monotonic() - killed_at
                time.sleep(0.5)   # the probe sees the requeued job too
            assert requeued["status"] == "queued" and requeued["attempts"] == 1 and requeued["worker"] is None
            assert "stopped responding" in " ".join(entry["message"] for entry in requeued["log"])
            assert waited < STALE_AFTER_S + 5, f"requeued only after {waited:.1f} s"
            assert not probe.failures and probe.polls >= 10, (probe.failures, probe.polls)
            assert [b["status"] for b in probe.seen].count("running") >= 1
            for body in probe.seen:   # the half-trained job never looked finished
                assert body["status"] in ("running", "queued"), body["status"]
                assert body["metrics"] is None and body["finished_at"] is None and body["n_predictions"] == 0
                assert not body["has_model"]
            assert client.get(f"/api/jobs/{job_id}/model").status_code == 404

            assert client.get("/healthz").status_code == 200
        check_database(data)
    finally:
        for w in workers:
            stop(w)
        stop(server)
