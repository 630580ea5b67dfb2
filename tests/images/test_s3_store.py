"""Loupe on an S3 image store (LOUPE_STORE_URL=s3://...) against a real S3-compatible server over HTTP."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import sqlite3
import subprocess
import sys
import zipfile

import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from sqlalchemy import func, select, text

from app.backup.make import make_backup
from app.backup.restore import restore_backup
from app.config import Settings
from app.db.models import Image, Snapshot
from app.images import store
from app.images.ingest import import_uploads
from app.main import create_app
from app.snapshots.export import export_snapshot
from tests.databases import ON_POSTGRES
from tests.factories import files_under, labelled_snapshot, upload
from tests.images import broken
from tests.images.conftest import objects
from tests.images.test_ingest import REFUSE_FOURTH
from tests.workers import FAST, finished, start_worker, stop, wait_for


def _local_files(settings: Settings) -> list:
    """Image files in the data dir: with an S3 store there must be none (tmp included)."""
    return [p for d in ("store", "thumbs", "previews", "tmp") for p in files_under(settings.data_dir / d)]


def _count(db) -> int:
    with db.reading() as session:
        return session.scalar(select(func.count(Image.id)))


def _expected_keys(client, imported: list[dict]) -> set[str]:
    keys = set()
    for item in imported:
        meta = client.get(f"/api/images/{item['id']}").json()
        ext = ".png" if meta["format"] == "PNG" else ".jpg"
        keys.update(f"team-a/{k}" for k in store.keys(item["sha256"], store.stored_path(item["sha256"], ext)))
    return keys


def test_import_serve_and_reimport_over_http(s3_settings, db, s3, bucket):
    photo = broken.encoded(broken.photo(900, 600), "JPEG", quality=85)
    files = [(f"shirts/img-{i}.png", broken.fmnist_png(i)) for i in range(4)] + [("café photo.jpg", photo)]
    with TestClient(create_app(s3_settings)) as client:
        report = upload(client, files, source="camera")
        assert len(report["imported"]) == 5 and report["duplicates"] == [] and report["rejected"] == []
        stored = objects(s3, bucket)
        assert set(stored) == _expected_keys(client, report["imported"])
        assert _local_files(s3_settings) == []

        ids = {item["filename"]: item["id"] for item in report["imported"]}
        r = client.get(f"/api/images/{ids['café photo.jpg']}/file")
        assert r.status_code == 200 and r.content == photo
        assert r.headers["content-type"] == "image/jpeg" and r.headers["content-length"] == str(len(photo))
        assert r.headers["content-disposition"] == "inline; filename*=utf-8''caf%C3%A9%20photo.jpg"
        assert "immutable" in r.headers["cache-control"]
        png = client.get(f"/api/images/{ids['shirts/img-2.png']}/file")
        assert png.content == broken.fmnist_png(2) and png.headers["content-type"] == "image/png"
        assert png.headers["content-disposition"] == 'inline; filename="img-2.png"'
        for which, size in (("thumb", 256), ("preview", 900)):
            r = client.get(f"/api/images/{ids['café photo.jpg']}/{which}")
            assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
            with PILImage.open(io.BytesIO(r.content)) as img:
                assert img.format == "JPEG" and max(img.size) == size

        again = upload(client, files[:2] + [("renamed.jpg", photo)], source="camera")
        assert again["imported"] == []
        assert sorted(d["id"] for d in again["duplicates"]) == sorted(
            [ids["shirts/img-0.png"], ids["shirts/img-1.png"], ids["café photo.jpg"]])
        assert objects(s3, bucket) == stored  # not one object written again
    assert _count(db) == 5


def test_an_object_gone_from_the_bucket_is_a_404(s3_settings, s3, bucket):
    with TestClient(create_app(s3_settings)) as client:
        item = upload(client, [("a.png", broken.fmnist_png(0))])["imported"][0]
        s3.delete_object(Bucket=bucket, Key=f"team-a/{store.thumb_key(item['sha256'])}")
        r = client.get(f"/api/images/{item['id']}/thumb")
        assert r.status_code == 404 and "missing from the store" in r.json()["detail"]
        assert client.get(f"/api/images/{item['id']}/preview").status_code == 200


def test_failed_import_leaves_no_objects_and_no_rows(s3_settings, db, s3, bucket):
    pngs = [(f"img-{i}.png", broken.fmnist_png(i)) for i in range(5)]
    first = import_uploads(db, s3_settings, [(name, io.BytesIO(data)) for name, data in pngs[:1]], source="s")
    before = objects(s3, bucket)
    assert len(before) == 3
    with db.writing() as session:  # a real failure from inside the database, on the fourth row
        for sql in REFUSE_FOURTH[session.get_bind().dialect.name]:
            session.execute(text(sql))
        session.commit()
    with pytest.raises(Exception, match="disk on fire"):
        import_uploads(db, s3_settings, [(name, io.BytesIO(data)) for name, data in pngs], source="s")
    assert objects(s3, bucket) == before  # img-0's files stay (its row names them); the rest are gone
    with db.reading() as session:
        assert session.scalars(select(Image.id)).all() == [first.imported[0]["id"]]
    assert _local_files(s3_settings) == []


def test_a_bucket_that_is_not_there_is_a_clear_error_and_imports_nothing(settings, db, s3, s3_endpoint, monkeypatch):
    monkeypatch.setenv("LOUPE_STORE_URL", "s3://loupe-never-made/x")
    monkeypatch.setenv("LOUPE_S3_ENDPOINT_URL", s3_endpoint)
    broken_store = Settings(data=settings.data, database_url=settings.database_url)
    with TestClient(create_app(broken_store)) as client:
        r = client.post("/api/images", data={"source": "s"},
                        files=[("files", ("a.png", broken.fmnist_png(0), "image/png"))])
        assert r.status_code == 503 and "s3://loupe-never-made/x" in r.json()["detail"]
    assert _count(db) == 0


def test_export_a_snapshot_from_the_bucket(s3_settings, db, tmp_path):
    with TestClient(create_app(s3_settings)) as client:
        snap = labelled_snapshot(client, 12, classes=3, folds=2)
        r = client.get(f"/api/snapshots/{snap['id']}/export?format=imagefolder")
        assert r.status_code == 200
        with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
            zipped = {n: zf.read(n) for n in zf.namelist() if n not in ("manifest.csv", "loupe-export.json")}
    with db.reading() as session:
        shas = dict(session.execute(select(Image.id, Image.sha256)).all())
        done = export_snapshot(session, s3_settings, session.get(Snapshot, snap["id"]), fmt="jsonl",
                               out=tmp_path / "out")
    assert done["images"] == 12 and len(zipped) == 12
    exported = {p.name: p.read_bytes() for p in files_under(tmp_path / "out") if p.suffix == ".png"}
    assert {n.rsplit("/", 1)[-1]: b for n, b in zipped.items()} == exported
    # every exported file is the original's bytes: its name starts with the sha256 of its content
    assert all(name.startswith(hashlib.sha256(data).hexdigest()[:16]) for name, data in exported.items())
    assert {hashlib.sha256(b).hexdigest() for b in exported.values()} == set(shas.values())


def test_worker_trains_on_originals_from_the_bucket(s3_settings, client_on_s3, s3, bucket):
    client = client_on_s3
    snap = labelled_snapshot(client, 30, classes=3, folds=2)
    job_id = client.post("/api/jobs", json={"snapshot": snap["id"], "config": FAST}).json()["id"]
    worker = start_worker(s3_settings.data_dir)  # LOUPE_STORE_URL and AWS_* come from the environment
    try:
        body = wait_for(client, job_id, finished)
    finally:
        stop(worker)
    assert body["status"] == "succeeded", body["error"]
    assert body["metrics"]["accuracy"] > 0.4
    cache = s3_settings.cache_dir
    copies = {p.relative_to(cache).as_posix(): p.read_bytes() for p in files_under(cache)}
    originals = {k.removeprefix("team-a/") for k in objects(s3, bucket) if k.startswith("team-a/store/")}
    assert set(copies) == originals and len(originals) == 30
    for key, data in copies.items():
        assert s3.get_object(Bucket=bucket, Key=f"team-a/{key}")["Body"].read() == data
    assert _local_files(s3_settings) == []
    # The model goes to the bucket too: an app on another machine (no jobs/ folder) serves it from there.
    model = s3.get_object(Bucket=bucket, Key=f"team-a/jobs/job-{job_id}/model.pt")["Body"].read()
    shutil.rmtree(s3_settings.jobs_dir)
    served = client.get(f"/api/jobs/{job_id}/model")
    assert served.status_code == 200 and served.content == model and len(model) > 1000
    # So do its embeddings: similar images are found from the bucket's copy.
    first = client.get(f"/api/snapshots/{snap['id']}/items").json()["items"][0]["image"]
    near = client.get(f"/api/images/{first}/similar", params={"k": 5})
    assert near.status_code == 200 and near.json()["job"] == job_id and len(near.json()["items"]) == 5


@pytest.fixture
def client_on_s3(s3_settings):
    with TestClient(create_app(s3_settings)) as client:
        yield client


@pytest.mark.skipif(ON_POSTGRES, reason="loupe backup copies the SQLite file (PostgreSQL: pg_dump)")
def test_backup_of_an_s3_store_restores_as_a_local_data_dir(s3_settings, client_on_s3, tmp_path):
    item = upload(client_on_s3, [("a.png", broken.fmnist_png(5))])["imported"][0]
    report = make_backup(s3_settings, tmp_path / "backup.tar")
    assert report.missing == [] and report.files == 4  # the database and 3 image files
    restored = restore_backup(tmp_path / "backup.tar", tmp_path / "restored")
    local = Settings(data=restored.data_dir, store_url="", database_url="")
    with TestClient(create_app(local)) as client:
        assert client.get(f"/api/images/{item['id']}/file").content == broken.fmnist_png(5)
        assert client.get(f"/api/images/{item['id']}/preview").status_code == 200
    with sqlite3.connect(local.database_path) as conn:
        assert conn.execute("SELECT sha256 FROM images").fetchall() == [(item["sha256"],)]


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_serve_and_worker_refuse_to_start_on_a_bucket_that_is_not_there(tmp_path, s3, s3_endpoint, command):
    env = {**os.environ, "LOUPE_STORE_URL": "s3://loupe-never-made", "LOUPE_S3_ENDPOINT_URL": s3_endpoint}
    done = subprocess.run([sys.executable, "-m", "app.cli", command, "--data", str(tmp_path / "data")],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2
    assert f"loupe {command}: the image store s3://loupe-never-made cannot be used" in done.stderr
