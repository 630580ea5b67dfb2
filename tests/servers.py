"""Real `loupe` server processes for tests that need one (browser, crash, backup)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data: Path, *, port: int | None = None, env: dict | None = None,
                 args: tuple[str, ...] = ("--no-worker",), log: Path | None = None) -> tuple[subprocess.Popen, str]:
    """Start `loupe serve` on loopback and wait until /healthz answers; (process, base url).

    Its output goes to `log` (default: server-PORT.log beside the data folder), never to a
    pipe nobody reads: a pipe fills up and then blocks the server mid-request.
    """
    port = port or free_port()
    log = log or Path(data).parent / f"server-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", *args, "--port", str(port), "--data", str(data)],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
        )
    proc.log_path = log
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text(errors='replace')}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server did not start: {log.read_text(errors='replace')}")


def server_errors(log: Path) -> list[str]:
    """Lines of a server log that tell of a failure: a traceback, an unhandled error, a 5xx."""
    if not log.exists():
        return []
    text = log.read_text(errors="replace")
    return [line for line in text.splitlines()
            if "Traceback" in line or "unhandled error" in line or "Exception in ASGI" in line
            or re.search(r'" 5\d\d\b', line)]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def running_server(data: Path, **kwargs):
    proc, base = start_server(data, **kwargs)
    try:
        yield base
    finally:
        stop(proc)
