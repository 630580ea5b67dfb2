"""Real `loupe` server processes for tests that need one (browser, crash, backup)."""

from __future__ import annotations

import os
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
                 args: tuple[str, ...] = ("--no-worker",)) -> tuple[subprocess.Popen, str]:
    """Start `loupe serve` on loopback and wait until /healthz answers; (process, base url)."""
    port = port or free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", *args, "--port", str(port), "--data", str(data)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {proc.stdout.read().decode()}")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server did not start: {proc.stdout.read().decode()}")


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
