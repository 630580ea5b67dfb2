"""The web app checkpoints SQLite's WAL from a thread, not inside a labeller's commit, and the WAL stays bounded."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from sqlalchemy import text

from app.db import engine as engine_module
from app.db.engine import Database
from tests import databases

pytestmark = pytest.mark.skipif(databases.ON_POSTGRES, reason="SQLite's WAL")


def _db(tmp_path, **kw) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'wal.db'}", **kw)
    with db.writing() as s:
        s.execute(text("CREATE TABLE IF NOT EXISTS rows (n INTEGER PRIMARY KEY, pad TEXT)"))
        s.commit()
    return db


def _autocheckpoint(db: Database) -> int:
    with db.writing() as s:
        return s.execute(text("PRAGMA wal_autocheckpoint")).scalar()


def test_only_the_app_database_moves_checkpoints_out_of_commits(tmp_path):
    plain = _db(tmp_path)
    assert plain.checkpointer is None and _autocheckpoint(plain) == 1000   # CLI, worker: SQLite's own
    plain.dispose()
    app_db = _db(tmp_path, background_checkpoint=True)
    try:
        assert app_db.checkpointer is not None and _autocheckpoint(app_db) == 0
        assert not app_db.checkpointer.running   # until the app starts it (create_app's lifespan)
    finally:
        app_db.dispose()


def test_the_app_uses_background_checkpoints(client):
    db = client.app.state.db
    assert db.checkpointer is not None and db.checkpointer.running   # started with the app
    assert _autocheckpoint(db) == 0
    runs = db.checkpointer.runs
    threading.Event().wait(engine_module.CHECKPOINT_S * 2.5)
    assert db.checkpointer.runs > runs


def test_wal_starts_over_although_a_writer_ran_during_the_checkpoint(tmp_path, monkeypatch):
    """SQLite starts the WAL over only when a write begins with every frame copied back. A writer that
    was busy while the PASSIVE checkpoint ran spoils that, every time under steady writes; run_once
    then finishes the checkpoint in a write transaction of its own."""
    monkeypatch.setattr(engine_module._Checkpointer, "FINISH_FRAMES", 50)   # no thread: the test runs them
    db = _db(tmp_path, background_checkpoint=True)

    def write(pad="x" * 3000):
        with db.writing() as s:
            s.execute(text("INSERT INTO rows (pad) VALUES (:p)"), {"p": pad})
            s.commit()

    for _ in range(100):
        write()
    # Another process's writer, in the middle of its transaction while the checkpoint runs.
    other = sqlite3.connect(tmp_path / "wal.db", isolation_level=None, timeout=10, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO rows (pad) VALUES ('other')")
    finishing = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    finishing.start()
    busy, frames, copied = db.checkpointer.run_once()
    finishing.join()
    other.close()
    assert busy == 0 and frames == copied and frames > 100
    write("after")
    _, frames, _ = db.checkpointer.checkpoint()
    assert frames < 10   # started over: the new write's pages only
    with db.reading() as s:
        assert s.execute(text("SELECT count(*) FROM rows")).scalar() == 102
    db.dispose()
