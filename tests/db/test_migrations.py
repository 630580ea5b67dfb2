"""The migrations own the schema: head matches the models, and the history runs down and up."""

from __future__ import annotations

import sqlite3

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from app.db import models  # noqa: F401
from app.db.base import Base
from app.db.migrate import alembic_config, upgrade_head


def test_head_matches_models(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade_head(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    engine.dispose()


def test_downgrade_to_base_and_back(tmp_path):
    path = tmp_path / "db.sqlite"
    url = f"sqlite:///{path}"
    upgrade_head(url)
    command.downgrade(alembic_config(url), "base")
    tables = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"alembic_version"}
    upgrade_head(url)
    assert sqlite3.connect(path).execute("SELECT count(*) FROM tags").fetchone() == (5,)
