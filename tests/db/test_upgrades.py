"""Migrations carry a populated database forward from every earlier schema without losing a row.

A database at head is filled through the real app and a real worker run. For
each earlier revision, a database is built at that revision and given every
row of that data that its schema can hold (the same tables, the columns it
has); then it is upgraded to head, and every one of those rows must come out
unchanged, and the app must work on the result. New migrations are covered
without editing this file, provided the filling below puts rows in their tables
(a test fails when a table at head stays empty).
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient

from app.config import Settings
from app.db.migrate import alembic_config, upgrade_head
from app.main import create_app
from tests.databases import ON_POSTGRES
from tests.factories import add_class, label, labelled_snapshot, upload_fmnist
from tests.logins import fill_accounts

pytestmark = pytest.mark.skipif(ON_POSTGRES, reason="builds and compares SQLite files revision by revision")

REVISIONS = [r.revision for r in reversed(list(ScriptDirectory.from_config(alembic_config("sqlite://")).walk_revisions()))]
PAGES = ("/", "/label", "/browse", "/taxonomy", "/snapshots", "/jobs", "/review", "/quality")


def _tables(conn: sqlite3.Connection, schema: str = "main") -> list[str]:
    return [r[0] for r in conn.execute(
        f"SELECT name FROM {schema}.sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' "
        "AND name != 'alembic_version' ORDER BY name")]


def _columns(conn: sqlite3.Connection, table: str, schema: str = "main") -> list[str]:
    return [r[1] for r in conn.execute(f'PRAGMA {schema}.table_info("{table}")')]


def _rows(conn: sqlite3.Connection, table: str, columns: list[str]) -> list[tuple]:
    cols = ", ".join(f'"{c}"' for c in columns)
    return conn.execute(f'SELECT {cols} FROM "{table}" ORDER BY {cols}').fetchall()


@pytest.fixture(scope="module")
def populated(tmp_path_factory):
    """A head database with rows in every table, made the way users make them."""
    settings = Settings(data=tmp_path_factory.mktemp("populated") / "data")
    settings.ensure_dirs()
    with TestClient(create_app(settings)) as client:
        snap = labelled_snapshot(client, 45, classes=3, folds=3)
        extra = upload_fmnist(client, 12, start=500, source="web")
        add_class(client, "coat", description="outer wear")
        for i in extra[:6]:
            label(client, i, "coat", confidence=0.6, tags=["dark"], note="check", annotator="ann")
        client.post(f"/api/images/{extra[0]}/labels/undo", json={"annotator": "ann"})
        ops = [
            {"op": "pin", "class": "coat", "image": extra[1], "kind": "this"},
            {"op": "merge", "classes": ["coat"], "into": "t-shirt"},
            {"op": "split", "class": "trouser", "into": ["jeans", "slacks"]},
            {"op": "describe", "class": "jeans", "description": "denim"},
        ]
        for op in ops:
            r = client.post("/api/taxonomy/changes", json=op)
            assert r.status_code == 201, (op, r.text)
        bulk = client.post("/api/labels/bulk", json={"images": extra[6:9], "class": "jeans", "annotator": "ann"})
        assert bulk.status_code == 201, bulk.text
        undo = client.post(f"/api/labels/bulk/{bulk.json()['id']}/undo", json={"annotator": "ann"})
        assert undo.status_code == 201, undo.text
        excluded = client.post(f"/api/images/{extra[9]}/exclude", json={"reason": "a scan", "annotator": "ann"})
        assert excluded.status_code == 201, excluded.text
        fill_accounts(client.app.state.db)
        job = client.post("/api/jobs", json={"snapshot": snap["id"], "config": {"epochs": 2, "batch_size": 16}})
        assert job.status_code == 201, job.text
    worker = subprocess.run([sys.executable, "-m", "app.cli", "worker", "--once", "--data", str(settings.data_dir)],
                            capture_output=True, text=True, timeout=300)
    assert worker.returncode == 0, worker.stderr[-2000:]
    # What a schema before 0015 can hold: single-label data (below, the taxonomy becomes multi-label, and every
    # label a set: rows an older schema would keep only in part).
    single = settings.database_path.with_name("single-label.db")
    with sqlite3.connect(settings.database_path) as src, sqlite3.connect(single) as dst:
        src.backup(dst)
    with TestClient(create_app(settings)) as client:  # last: the trained snapshot stays single-label
        r = client.post("/api/taxonomy/changes", json={"op": "set-mode", "mode": "multi-label"})
        assert r.status_code == 201, r.text
        r = client.post(f"/api/images/{extra[10]}/labels", json={"classes": ["t-shirt", "jeans"], "annotator": "ann"})
        assert r.status_code == 201, r.text
    return {"head": settings.database_path, "single-label": single}


MULTI_LABEL = "0015"  # revisions from here on hold the multi-label rows


def test_every_table_at_head_is_populated(populated):
    conn = sqlite3.connect(populated["head"])
    empty = [t for t in _tables(conn) if conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] == 0]
    assert empty == [], f"fill these tables in `populated` so upgrades into them are tested: {empty}"


@pytest.mark.parametrize("revision", REVISIONS[:-1])
def test_upgrade_from_earlier_revision_keeps_every_row(populated, tmp_path, revision):
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"
    command.upgrade(alembic_config(url), revision)

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    source = populated["head"] if int(revision) >= int(MULTI_LABEL) else populated["single-label"]
    conn.execute("ATTACH DATABASE ? AS src", (str(source),))
    conn.execute("BEGIN")
    conn.execute("PRAGMA defer_foreign_keys=ON")  # self-references (a merge's replaced_by) point forward
    before = {}
    # Triggers fill the counters as the rows they follow go in (0008, 0011, 0013): copy them last, over what
    # the triggers made (class_counts sorts before classes, flag_counts before flags).
    for table in sorted(_tables(conn), key=lambda t: t in ("source_counts", "class_counts", "flag_counts")):
        cols = [c for c in _columns(conn, table) if c in _columns(conn, table, "src")]
        quoted = ", ".join(f'"{c}"' for c in cols)
        conn.execute(f'DELETE FROM "{table}"')  # rows a migration seeded (tags) come from the source instead
        conn.execute(f'INSERT INTO "{table}" ({quoted}) SELECT {quoted} FROM src."{table}"')
        before[table] = (cols, _rows(conn, table, cols))
        assert len(before[table][1]) == conn.execute(f'SELECT count(*) FROM src."{table}"').fetchone()[0] > 0
    conn.execute("COMMIT")
    conn.execute("DETACH DATABASE src")
    conn.close()

    upgrade_head(url)

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == REVISIONS[-1]
    for table, (cols, rows) in before.items():
        assert _rows(conn, table, cols) == rows, f"{table} changed while upgrading from {revision}"
    if "class_revisions" not in before:  # added by 0002, which backfills one revision per class
        assert conn.execute("SELECT count(*) FROM class_revisions").fetchone()[0] == \
            conn.execute("SELECT count(*) FROM classes").fetchone()[0]
    conn.close()

    data = tmp_path / "data"
    data.mkdir()
    shutil.move(path, data / "loupe.db")
    with TestClient(create_app(Settings(data=data))) as client:
        for page in PAGES:
            r = client.get(page, headers={"Accept": "text/html"})
            assert r.status_code == 200, (page, r.text[:300])
        labelled = client.get("/api/images?status=labelled&limit=5").json()["items"]
        assert labelled
        image = client.get(f"/api/images/{labelled[0]['id']}").json()
        assert image["label"] and image["history"]
        r = client.post(f"/api/images/{labelled[0]['id']}/labels", json={"class": image["label"]["class"]})
        assert r.status_code == 201, r.text
        r = client.post("/api/taxonomy/changes", json={"op": "add", "name": "after upgrade"})
        assert r.status_code == 201, r.text
