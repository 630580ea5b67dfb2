"""The worker `loupe serve` starts lives only as long as serve: SIGTERM or SIGKILL serve, the worker goes too,
and the job it was running goes back to the queue, never left "running".

Real processes: `loupe serve` with its own worker, found through /proc by parent pid.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.db.engine import Database
from app.db.models import Job
from tests.factories import labelled_snapshot
from tests.servers import start_server, stop
from tests.workers import wait_for

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the worker through /proc")]

# Epochs long enough that the job is still running when serve is killed.
SLOW_JOB = {"epochs": 200, "image_size": 28, "batch_size": 16}
GONE_WITHIN_S = 10


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:  # field 4: ppid (after the command in parentheses)
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; only its parent's wait is missing


def _worker_of(server) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        kids = _children(server.pid)
        if kids:
            return kids[0]
        time.sleep(0.1)
    pytest.fail("loupe serve started no worker")


def _job_status(data: Path, job_id: int) -> tuple[str, str | None]:
    db = Database(Settings(data=data, database_url=os.environ.get("LOUPE_DATABASE_URL", "")).database_url)
    try:
        with db.reading() as s:
            job = s.get(Job, job_id)
            return job.status, job.message
    finally:
        db.dispose()


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_the_worker_stops_with_serve_and_gives_its_job_back(tmp_path, how):
    data = tmp_path / "data"
    server, base = start_server(data, args=(), env={"LOUPE_HEARTBEAT_S": "0.3", "LOUPE_POLL_S": "0.2"})
    try:
        worker = _worker_of(server)
        with httpx.Client(base_url=base, timeout=60) as client:
            snap = labelled_snapshot(client, 60, classes=3, folds=2)
            job_id = client.post("/api/jobs", json={"snapshot": snap["id"], "config": SLOW_JOB}).json()["id"]
            running = wait_for(client, job_id, lambda b: b["status"] == "running" and len(b["epochs"]) >= 1)
            assert running["worker"].endswith(f":{worker}")
        os.kill(server.pid, how)
        killed = time.monotonic()
        while _alive(worker) and time.monotonic() - killed < GONE_WITHIN_S:
            time.sleep(0.05)
        assert not _alive(worker), f"worker {worker} outlived serve ({how.name}) by {GONE_WITHIN_S} s"
        gone_after = time.monotonic() - killed
        server.wait(timeout=30)
        status, message = _job_status(data, job_id)
        assert status == "queued" and "requeued" in message, (status, message)
        print(f"{how.name}: worker gone {gone_after:.2f} s after serve was signalled")
    finally:
        stop(server)
        for pid in _children(server.pid):  # never leave a stray worker behind a failed test
            os.kill(pid, signal.SIGKILL)


def test_without_prctl_the_worker_notices_its_parent_is_gone(tmp_path):
    """The portable fallback alone: a parent that sets LOUPE_PARENT_PID but no death signal, then dies."""
    data = tmp_path / "data"
    stop(start_server(data)[0])  # a migrated data dir
    script = (
        "import os, subprocess, sys, time\n"
        f"w = subprocess.Popen([sys.executable, '-m', 'app.cli', 'worker', '--data', {str(data)!r}],\n"
        "                     env={**os.environ, 'LOUPE_PARENT_PID': str(os.getpid())})\n"
        "print(w.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    try:
        time.sleep(1.0)
        assert _alive(worker)
        parent.kill()
        parent.wait()
        killed = time.monotonic()
        while _alive(worker) and time.monotonic() - killed < GONE_WITHIN_S:
            time.sleep(0.05)
        assert not _alive(worker), "the worker did not notice that its parent died"
    finally:
        if _alive(worker):
            os.kill(worker, signal.SIGKILL)
