"""A real S3-compatible server for tests: moto's standalone `moto_server`, over HTTP on loopback."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.servers import free_port, stop

# moto accepts any credentials; boto3 refuses to sign without some.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "loupe-test", "AWS_SECRET_ACCESS_KEY": "loupe-test-secret",
               "AWS_DEFAULT_REGION": "us-east-1"}


def _command() -> list[str] | None:
    beside = Path(sys.executable).with_name("moto_server")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("moto_server")
    return [found] if found else None


@contextmanager
def moto_server():
    """Yield the endpoint URL of a fresh `moto_server` process; it is stopped after."""
    command = _command()
    if command is None:
        raise RuntimeError("moto_server is not installed: pip install -e '.[test]'")
    port = free_port()
    log = tempfile.TemporaryFile()  # not a pipe: it logs every request, and a full pipe would stall it
    proc = subprocess.Popen([*command, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"moto_server exited with {proc.returncode}: {log.read().decode()[-2000:]}")
            try:
                httpx.get(endpoint, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not answer within 60 s") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        stop(proc)
        log.close()
