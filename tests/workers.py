"""Real `loupe worker` processes and job polling, shared by the worker and crash tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.servers import stop

# Trains in a few seconds on CPU: tiny images, few epochs.
FAST = {"epochs": 4, "image_size": 28, "batch_size": 16}

__all__ = ["FAST", "finished", "start_worker", "stop", "wait_for"]


def start_worker(data_dir: Path, **env) -> subprocess.Popen:
    """`loupe worker` on `data_dir`, beating every 0.3 s; `env` sets more LOUPE_* settings (stale_after_s=3)."""
    extra = {"LOUPE_HEARTBEAT_S": "0.3", "LOUPE_POLL_S": "0.2",
             **{f"LOUPE_{k.upper()}": str(v) for k, v in env.items()}}
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "worker", "--data", str(data_dir)],
        env={**os.environ, **extra}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def wait_for(client, job_id: int, condition, timeout: float = 180) -> dict:
    """Poll GET /api/jobs/{id} (any client with .get: TestClient or httpx) until `condition(body)`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/jobs/{job_id}").json()
        if condition(body):
            return body
        time.sleep(0.3)
    pytest.fail(f"job {job_id} never got there: {body['status']} {body['message']} {body['error']}")


def finished(body) -> bool:
    return body["status"] in ("succeeded", "failed", "cancelled")
