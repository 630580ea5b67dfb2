"""The web app checkpoints SQLite's WAL from a thread, not inside a labeller's commit, and the WAL stays bounded."""

from __future__ import annotations

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
    finally:
        app_db.dispose()


def test_the_app_uses_background_checkpoints(client):
    db = client.app.state.db
    assert db.checkpointer is not None
    assert _autocheckpoint(db) == 0


def test_wal_starts_over_under_steady_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(engine_module, "CHECKPOINT_S", 3600.0)   # this test runs the checkpoints itself
    monkeypatch.setattr(engine_module._Checkpointer, "FINISH_FRAMES", 50)
    db = _db(tmp_path, background_checkpoint=True)
    stop, written, errors = threading.Event(), [0], []

    def write():
        try:
            while not stop.is_set():
                with db.writing() as s:
                    s.execute(text("INSERT INTO rows (pad) VALUES (:p)"), {"p": "x" * 3000})
                    s.commit()
                written[0] += 1
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        seen = []
        while len(seen) < 5 or written[0] < 500:
            while written[0] < 100 * (len(seen) + 1):
                threading.Event().wait(0.01)
            seen.append(db.checkpointer.run_once())
    finally:
        stop.set()
        writer.join()
    assert not errors
    # Every checkpoint copied back all it saw, none was refused, and the WAL kept starting over:
    # far fewer frames in it than the writer wrote (a page or more each) since the start.
    assert all(busy == 0 and copied == frames for busy, frames, copied in seen)
    assert max(frames for _, frames, _ in seen) < written[0]
    with db.writing() as s:
        s.execute(text("INSERT INTO rows (pad) VALUES ('after')"))
        s.commit()
    _, frames, _ = db.checkpointer.checkpoint()
    assert frames < 50
    with db.reading() as s:
        assert s.execute(text("SELECT count(*) FROM rows")).scalar() == written[0] + 1
    db.dispose()
