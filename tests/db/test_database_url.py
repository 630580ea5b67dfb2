"""LOUPE_DATABASE_URL: SQLite in the data dir by default, PostgreSQL through psycopg 3 when given."""

from __future__ import annotations

import subprocess
import sys

import pytest

from app.config import Settings
from tests.databases import ON_POSTGRES


def test_default_is_the_sqlite_file_in_the_data_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("LOUPE_DATABASE_URL", raising=False)
    s = Settings(data=tmp_path / "d")
    assert s.is_sqlite and s.database_url == f"sqlite:///{tmp_path / 'd' / 'loupe.db'}"
    assert s.database_path == tmp_path / "d" / "loupe.db"


@pytest.mark.parametrize("given", ["postgresql://u:p%40ss@db:5432/loupe", "postgres://u:p%40ss@db:5432/loupe"])
def test_postgres_urls_use_psycopg_3(monkeypatch, given):
    monkeypatch.setenv("LOUPE_DATABASE_URL", given)
    s = Settings()
    assert not s.is_sqlite and s.database_url == "postgresql+psycopg://u:p%40ss@db:5432/loupe"


@pytest.mark.skipif(not ON_POSTGRES, reason="needs LOUPE_TEST_DATABASE_URL (scripts/pg.sh)")
def test_backup_on_postgres_is_a_clear_error(settings, tmp_path):
    done = subprocess.run([sys.executable, "-m", "app.cli", "backup", "--out", str(tmp_path / "b.tar"),
                           "--data", str(settings.data_dir)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "pg_dump" in done.stderr, done.stderr


@pytest.mark.skipif(not ON_POSTGRES, reason="needs LOUPE_TEST_DATABASE_URL (scripts/pg.sh)")
def test_nul_in_text_is_a_clear_422_on_postgres(client):
    r = client.post("/api/snapshots", json={"name": "a\x00b"})
    assert r.status_code == 422 and "NUL" in r.json()["detail"], r.text
    r = client.get("/api/images", params={"source": "web\x00"})
    assert r.status_code == 422 and "NUL" in r.json()["detail"], r.text
