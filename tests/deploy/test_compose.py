"""docker-compose.yml as Debian's docker-compose parses it (no engine needed): the team set-up it promises."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def compose(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail("docker-compose is missing: the test set-up installs Debian's docker-compose")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LOUPE_", "COMPOSE_"))}
    return subprocess.run([exe, "-f", str(ROOT / "docker-compose.yml"), *args], capture_output=True, text=True,
                          env={**clean, **(env or {})}, cwd=ROOT, timeout=60)


@pytest.fixture(scope="module")
def config() -> dict:
    done = compose("--profile", "cpu", "config", env={"LOUPE_DB_PASSWORD": "pw"})
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_services_and_their_wiring(config):
    services = config["services"]
    assert {"app", "worker", "postgres", "worker-cpu"} <= set(services)
    url = "postgresql://loupe:pw@postgres:5432/loupe"
    for name in ("app", "worker", "worker-cpu"):
        env = services[name]["environment"]
        assert env["LOUPE_DATABASE_URL"] == url and env["LOUPE_DATA"] == "/data"
        assert any(str(v).startswith("loupe-data:/data") for v in services[name]["volumes"])
    assert services["app"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["app"]["condition"] == "service_healthy"
    # The app is published on the host's loopback only.
    assert all(str(p).startswith("127.0.0.1:") for p in services["app"]["ports"])


def test_postgres_has_a_volume_and_a_health_check(config):
    pg = config["services"]["postgres"]
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert any(str(v).startswith("postgres-data:/var/lib/postgresql/data") for v in pg["volumes"])
    assert {"loupe-data", "postgres-data"} <= set(config["volumes"])


def test_worker_reserves_an_nvidia_gpu_and_the_cpu_one_does_not(config):
    devices = config["services"]["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert "deploy" not in config["services"]["worker-cpu"]


def test_refuses_to_start_without_a_database_password():
    done = compose("config")
    assert done.returncode != 0
    assert "LOUPE_DB_PASSWORD" in done.stderr
