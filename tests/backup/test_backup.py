"""`loupe backup` while a real server takes label writes, then `loupe restore` and a look at everything."""

from __future__ import annotations

import hashlib
import io
import sqlite3
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.db.migrate import alembic_config
from app.main import create_app
from tests.databases import ON_POSTGRES
from tests.factories import add_class, label, upload_fmnist
from tests.servers import running_server

pytestmark = pytest.mark.skipif(ON_POSTGRES, reason="loupe backup copies the SQLite file (PostgreSQL: pg_dump)")


def loupe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, timeout=300)


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


class Writer(threading.Thread):
    """Labels images round-robin, each write with a unique note, until stopped; remembers what was acknowledged."""

    def __init__(self, base: str, ids: list[int]):
        super().__init__(daemon=True)
        self.base, self.ids = base, ids
        self.acked: list[str] = []
        self.stop_now = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as client:
            n = 0
            while not self.stop_now.is_set():
                note = f"write-{n}"
                cls = ("shirt", "shoe")[n % 2]
                r = client.post(f"/api/images/{self.ids[n % len(self.ids)]}/labels",
                                json={"class": cls, "confidence": 1.0, "note": note, "annotator": "writer"})
                assert r.status_code == 201, r.text
                self.acked.append(note)
                n += 1


@pytest.fixture(scope="module")
def backed_up(tmp_path_factory):
    """A backup taken while a writer keeps labelling; (archive, server data dir, notes acked before, all acked)."""
    tmp_path = tmp_path_factory.mktemp("backup")
    data, archive = tmp_path / "live", tmp_path / "loupe-backup.tar"
    with running_server(data) as base, httpx.Client(base_url=base, timeout=60) as client:
        add_class(client, "shirt")
        add_class(client, "shoe")
        ids = upload_fmnist(client, 40)
        for i in ids[:10]:
            label(client, i, "shoe", note="before", annotator="ann")
        writer = Writer(base, ids)
        writer.start()
        while len(writer.acked) < 20:
            writer.stop_now.wait(0.05)
        acked_before = list(writer.acked)
        done = loupe("backup", "--out", str(archive), "--data", str(data))
        while len(writer.acked) < len(acked_before) + 40:  # the app went on writing during and after
            writer.stop_now.wait(0.05)
        writer.stop_now.set()
        writer.join(timeout=30)
    assert done.returncode == 0, done.stderr
    assert "backed up 40 images" in done.stdout
    return archive, data, acked_before, writer.acked


def test_backup_while_writing_restores_everything(backed_up, tmp_path):
    archive, live, acked_before, acked_all = backed_up
    restored = tmp_path / "restored"
    done = loupe("restore", str(archive), "--data", str(restored))
    assert done.returncode == 0, done.stderr

    conn = sqlite3.connect(restored / "loupe.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == head_revision()
    notes = {r[0] for r in conn.execute("SELECT note FROM label_events WHERE annotator = 'writer'")}
    # Everything acknowledged before the backup began is in it; nothing in it was never written.
    assert set(acked_before) <= notes <= set(acked_all)
    assert conn.execute("SELECT count(*) FROM label_events WHERE note = 'before'").fetchone()[0] == 10
    # One consistent moment: every image's current label is its latest event in the copy.
    stale = conn.execute(
        "SELECT count(*) FROM current_labels c WHERE c.event_id != "
        "(SELECT max(e.id) FROM label_events e WHERE e.image_id = c.image_id)").fetchone()[0]
    assert stale == 0
    # The append-only guards came along.
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM label_events")
    conn.close()

    settings = Settings(data=restored)
    with TestClient(create_app(settings)) as client:
        items = client.get("/api/images?limit=100").json()["items"]
        assert len(items) == 40
        for item in items:
            body = client.get(f"/api/images/{item['id']}/file").content
            assert hashlib.sha256(body).hexdigest() == item["sha256"]
            assert client.get(f"/api/images/{item['id']}/thumb").status_code == 200
        first = client.get(f"/api/images/{items[0]['id']}").json()
        assert first["history"][0]["note"] in ("before", *acked_all)
        assert client.get("/label").status_code == 200
        # The restored copy is a working Loupe: it takes new labels.
        assert client.post(f"/api/images/{items[0]['id']}/labels", json={"class": "shirt"}).status_code == 201
    # The live data was left as it was.
    assert (live / "loupe.db").is_file()


def test_restore_refuses_to_overwrite(backed_up, tmp_path):
    archive, *_ = backed_up
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    done = loupe("restore", str(archive), "--data", str(target))
    assert done.returncode == 2
    assert "not empty" in done.stderr
    assert [p.name for p in target.iterdir()] == ["keep.txt"]


def _rewrite(archive: Path, out: Path, change) -> None:
    """Copy a tar, letting `change(name, data)` return new bytes (or None to keep them)."""
    with tarfile.open(archive) as src, tarfile.open(out, "w") as dst:
        for member in src:
            data = src.extractfile(member).read()
            new = change(member.name, data)
            if new is not None:
                data = new
            info = tarfile.TarInfo(member.name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))


def test_restore_rejects_a_damaged_backup(backed_up, tmp_path):
    archive, *_ = backed_up
    damaged = tmp_path / "damaged.tar"

    def flip(name: str, data: bytes):
        if name.startswith("store/") and not flip.done:
            flip.done = True
            return data[:-1] + bytes([data[-1] ^ 0xFF])
        return None

    flip.done = False
    _rewrite(archive, damaged, flip)
    done = loupe("restore", str(damaged), "--data", str(tmp_path / "out"))
    assert done.returncode == 2
    assert "does not match its checksum" in done.stderr
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if ".restoring-" in p.name]


def test_restore_rejects_odd_paths(tmp_path):
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    done = loupe("restore", str(evil), "--data", str(tmp_path / "out"))
    assert done.returncode == 2
    assert "unexpected entry" in done.stderr
    assert not (tmp_path / "escaped.txt").exists()
    not_tar = tmp_path / "notes.tar"
    not_tar.write_text("hello")
    done = loupe("restore", str(not_tar), "--data", str(tmp_path / "out2"))
    assert done.returncode == 2 and "not a readable Loupe backup" in done.stderr


def test_backup_without_data_is_a_clear_error(tmp_path):
    done = loupe("backup", "--out", str(tmp_path / "b.tar"), "--data", str(tmp_path / "nothing"))
    assert done.returncode == 2
    assert "no Loupe data" in done.stderr
    assert not (tmp_path / "b.tar").exists()
