"""Fixtures: a migrated temporary SQLite file per test and the real app over HTTP."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.db.engine import Database
from app.db.migrate import upgrade_head
from app.main import create_app
from tests import fmnist


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory) -> Path:
    """One `upgrade head` per run; each test copies the file (much faster than migrating)."""
    path = tmp_path_factory.mktemp("template") / "loupe.db"
    upgrade_head(f"sqlite:///{path}")
    return path


@pytest.fixture
def settings(tmp_path, migrated_template) -> Settings:
    s = Settings(data=tmp_path / "data")
    s.ensure_dirs()
    shutil.copy(migrated_template, s.database_path)
    return s


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
