"""The migrations own the schema: head matches the models, and the history runs down and up.

On SQLite always, and on PostgreSQL too when LOUPE_TEST_DATABASE_URL names a server.
"""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from app.db import models  # noqa: F401
from app.db.base import Base
from app.db.migrate import alembic_config, upgrade_head
from tests import databases


@pytest.fixture(params=["sqlite", "postgresql"])
def blank_url(request, tmp_path):
    """An empty database: a new SQLite file, or a new PostgreSQL database on the test server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db.sqlite'}"
        return
    if not databases.ON_POSTGRES:
        pytest.skip("set LOUPE_TEST_DATABASE_URL (scripts/pg.sh) to run it on PostgreSQL")
    url = databases.empty_database()
    yield url
    databases.drop(url)


def test_head_matches_models(blank_url):
    upgrade_head(blank_url)
    engine = create_engine(blank_url)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    engine.dispose()


def test_downgrade_to_base_and_back(blank_url):
    upgrade_head(blank_url)
    command.downgrade(alembic_config(blank_url), "base")
    engine = create_engine(blank_url)
    try:
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
        upgrade_head(blank_url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM tags")).scalar() == 5
    finally:
        engine.dispose()


def test_append_only_tables_refuse_rewrites(blank_url):
    upgrade_head(blank_url)
    engine = create_engine(blank_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO taxonomy_versions (number, message, author, created_at) "
                          "VALUES (1, '', '', CURRENT_TIMESTAMP)"))
    engine.dispose()
    for sql in ("UPDATE taxonomy_versions SET number = 2", "DELETE FROM taxonomy_versions"):
        assert "taxonomy_versions is append-only" in databases.refused(blank_url, sql)
