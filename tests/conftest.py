"""Fixtures: a migrated temporary database per test and the real app over HTTP.

SQLite by default; with LOUPE_TEST_DATABASE_URL set (scripts/pg.sh), a fresh
PostgreSQL database per test (see tests/databases.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.db.engine import Database
from app.db.migrate import upgrade_head
from app.main import create_app
from tests import databases, fmnist


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory) -> Path:
    """A migrated SQLite file, for session fixtures that copy it themselves (SQLite even on a PostgreSQL run)."""
    path = tmp_path_factory.mktemp("template") / "loupe.db"
    upgrade_head(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def database_template(tmp_path_factory) -> databases.Template:
    """One `upgrade head` per run; each test gets a copy (much faster than migrating)."""
    template = databases.Template(tmp_path_factory.mktemp("db-template"))
    yield template
    template.close()


@pytest.fixture(scope="session", autouse=True)
def _postgres_template(request):
    """On PostgreSQL, the template exists before any test asks databases.database_for for a database
    (with pytest-xdist each worker process makes its own, whichever test it happens to run first)."""
    if databases.ON_POSTGRES:
        request.getfixturevalue("database_template")


@pytest.fixture
def settings(tmp_path, database_template, monkeypatch) -> Settings:
    url = database_template.fresh(tmp_path / "data")
    if databases.ON_POSTGRES:
        # Workers and CLI commands the test starts find the same database.
        monkeypatch.setenv("LOUPE_DATABASE_URL", url)
    s = Settings(data=tmp_path / "data", database_url=url)
    s.ensure_dirs()
    yield s
    databases.drop(url)


@pytest.fixture
def db(settings) -> Database:
    database = Database(settings.database_url)
    yield database
    database.dispose()


@pytest.fixture
def client(settings) -> TestClient:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture(scope="session")
def fmnist_dir(tmp_path_factory) -> Path:
    """200 real Fashion-MNIST PNGs in class folders."""
    out = tmp_path_factory.mktemp("fmnist")
    fmnist.write_pngs(out, 200, folders=True)
    return out
