"""Checks on a data directory after a crash: the SQLite file is sound and label history is whole."""

from __future__ import annotations

import sqlite3
from pathlib import Path

APPEND_ONLY = ("label_events", "taxonomy_versions")


def open_db(data: Path) -> sqlite3.Connection:
    return sqlite3.connect(data / "loupe.db", timeout=10)


def check_database(data: Path) -> None:
    """integrity_check ok, no dangling foreign keys, append-only triggers in place and firing."""
    con = open_db(data)
    try:
        assert con.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert con.execute("PRAGMA foreign_key_check").fetchall() == []
        triggers = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        for table in APPEND_ONLY:
            assert {f"{table}_no_update", f"{table}_no_delete"} <= triggers, triggers
        for sql in ("UPDATE label_events SET note = 'tampered'", "DELETE FROM label_events"):
            try:
                con.execute(sql)
            except sqlite3.DatabaseError as exc:
                assert "append-only" in str(exc)
            else:
                raise AssertionError(f"{sql!r} was allowed")
        # The materialised current label is each image's latest event that is not an audit.
        stale = con.execute("""
            SELECT c.image_id, c.event_id, max(e.id) FROM current_labels c
            JOIN label_events e ON e.image_id = c.image_id AND e.kind != 'audit'
            GROUP BY c.image_id HAVING c.event_id != max(e.id)
        """).fetchall()
        assert stale == [], stale
        orphans = con.execute("""
            SELECT DISTINCT e.image_id FROM label_events e LEFT JOIN current_labels c ON c.image_id = e.image_id
            WHERE e.kind != 'audit' AND c.image_id IS NULL
        """).fetchall()
        assert orphans == [], orphans
    finally:
        con.rollback()
        con.close()


def check_history(client, image_id: int) -> list[dict]:
    """GET /api/images/{id}: events oldest first, the label is the latest non-audit event; returns the history."""
    body = client.get(f"/api/images/{image_id}").json()
    hist = body["history"]
    ids = [e["id"] for e in hist]
    assert ids == sorted(ids) and len(set(ids)) == len(ids), ids
    stamps = [e["created_at"] for e in hist]
    assert stamps == sorted(stamps), stamps
    decisive = [e for e in hist if e["kind"] != "audit"]
    if decisive and decisive[-1]["class_id"] is not None:
        assert body["label"]["id"] == decisive[-1]["id"], (body["label"], decisive[-1])
        assert body["label"]["class_id"] == decisive[-1]["class_id"]
    else:
        assert body["label"] is None
    return hist
