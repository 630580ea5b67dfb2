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


def test_0009_tables_are_append_only_and_earlier_exclusions_become_events(blank_url):
    """0009 adds bulk actions and exclusion events; an image excluded before it gets one event, so
    images.excluded is always its latest exclusion event's state."""
    command.upgrade(alembic_config(blank_url), "0008")
    engine = create_engine(blank_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO sources (name, description, created_at) VALUES ('s', '', CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO import_batches (source_id, origin, created_at) "
                          "VALUES (1, 'cli', CURRENT_TIMESTAMP)"))
        for i, excluded in ((1, True), (2, False)):
            conn.execute(text(
                "INSERT INTO images (sha256, stored_path, original_filename, source_id, batch_id, width, height, "
                "format, mode, byte_size, phash, imported_at, excluded, labelled) VALUES (:sha, 'p', 'f', 1, 1, "
                "1, 1, 'PNG', 'L', 1, 0, CURRENT_TIMESTAMP, :excluded, :no)"), {"sha": str(i) * 64,
                                                                                "excluded": excluded, "no": False})
    engine.dispose()
    upgrade_head(blank_url)
    engine = create_engine(blank_url)
    with engine.begin() as conn:
        rows = conn.execute(text("SELECT image_id, excluded FROM exclusion_events")).all()
        assert [(i, bool(e)) for i, e in rows] == [(1, True)]
        conn.execute(text("INSERT INTO bulk_actions (action, reason, annotator, selection, count, skipped, "
                          "created_at) VALUES ('exclude', 'r', 'a', '{}', 1, 0, CURRENT_TIMESTAMP)"))
    engine.dispose()
    for table, column in (("bulk_actions", "count"), ("exclusion_events", "reason")):
        for sql in (f"UPDATE {table} SET {column} = {column}", f"DELETE FROM {table}"):
            assert f"{table} is append-only" in databases.refused(blank_url, sql)


def test_0010_keeps_jobs_and_their_children_and_lets_a_job_go_without_a_snapshot(blank_url):
    """0010 copies the jobs table (SQLite) to drop NOT NULL from snapshot_id: rows that point at a job
    (predictions, logs) must still point at it afterwards."""
    command.upgrade(alembic_config(blank_url), "0009")
    engine = create_engine(blank_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO taxonomy_versions (number, message, author, created_at) "
                          "VALUES (1, '', '', CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO snapshots (name, taxonomy_version_id, filter, split, seed, classes, hash, "
                          "count, created_at) VALUES ('s', 1, '{}', '{}', 0, '[]', 'h', 0, CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO jobs (kind, snapshot_id, config, status, attempts, cancel_requested, "
                          "progress, message, notes, artifacts, created_at) VALUES ('train', 1, '{}', 'succeeded', "
                          "1, false, 1.0, '', '[]', '{}', CURRENT_TIMESTAMP)"))
        conn.execute(text("INSERT INTO job_logs (job_id, message, created_at) VALUES (1, 'kept', CURRENT_TIMESTAMP)"))
    engine.dispose()
    upgrade_head(blank_url)
    engine = create_engine(blank_url)
    with engine.begin() as conn:
        assert conn.execute(text("SELECT kind, snapshot_id FROM jobs")).all() == [("train", 1)]
        assert conn.execute(text("SELECT job_id, message FROM job_logs")).all() == [(1, "kept")]
        conn.execute(text("INSERT INTO jobs (kind, snapshot_id, config, status, attempts, cancel_requested, "
                          "progress, message, notes, artifacts, created_at) VALUES ('embed', NULL, '{}', 'queued', "
                          "0, false, 0.0, '', '[]', '{}', CURRENT_TIMESTAMP)"))
    engine.dispose()
