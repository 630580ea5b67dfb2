"""`loupe backup`: one file holding a consistent copy of the database and the files it points at.

The database is copied with SQLite's online backup API in a single step: it
reads one snapshot of the file while, in WAL mode, the app and the worker go on
writing. Every file the copy refers to already exists then (an import writes
its files before the rows that name them), and stored files never change
(content-addressed), so copying them afterwards gives a matching set.
The archive is written under a temporary name and renamed when complete, so a
crashed backup never looks like a good one.

With an S3 image store (LOUPE_STORE_URL) the files are downloaded from the
bucket into the archive under the same names, so `loupe restore` makes a data
dir with a local store: a way to move off S3 as well as a backup.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from app.config import Settings
from app.errors import InvalidInput
from app.images import blobs, store
from app.timeutil import utcnow

FORMAT = 1
DB_NAME = "loupe.db"
MANIFEST = "manifest.json"
# Final models only: checkpoints and fold predictions belong to a running job.
JOB_FILES = ("model.pt", "model.json")


@dataclass
class BackupReport:
    out: Path
    revision: str
    tables: dict[str, int]
    files: int = 0
    bytes: int = 0
    missing: list[str] = field(default_factory=list)
    seconds: float = 0.0


class _Hashing:
    """A file wrapper that hashes what tarfile reads from it."""

    def __init__(self, f):
        self._f, self.sha = f, hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self.sha.update(data)
        return data


def sqlite_path(settings: Settings) -> Path:
    if not settings.database_url.startswith("sqlite"):
        raise InvalidInput("loupe backup copies a SQLite database; on PostgreSQL back the database up with "
                           "pg_dump and copy the image store folder")
    if not settings.database_path.is_file():
        raise InvalidInput(f"no Loupe data in {settings.data_dir}")
    return settings.database_path


def copy_database(src_path: Path, dst_path: Path) -> None:
    """An online, transactionally consistent copy, made self-contained (no -wal file needed)."""
    src = sqlite3.connect(src_path, timeout=30)
    dst = sqlite3.connect(dst_path)
    try:
        src.backup(dst)  # pages=-1: one step, one read snapshot; writers go on meanwhile (WAL)
        dst.execute("PRAGMA journal_mode=DELETE")
        check = dst.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            raise InvalidInput(f"the database copy failed its integrity check: {check}")
    finally:
        dst.close()
        src.close()


def _contents(db_path: Path) -> tuple[str, dict[str, int], list[tuple[str, str]], list[int]]:
    """(revision, rows per table, (sha256, stored path) of each image, ids of finished jobs) in the copy."""
    conn = sqlite3.connect(db_path)
    try:
        revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        tables = {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
        images = [(sha, stored) for sha, stored in conn.execute("SELECT sha256, stored_path FROM images ORDER BY id")]
        jobs = ([r[0] for r in conn.execute("SELECT id FROM jobs WHERE status = 'succeeded'")]
                if "jobs" in tables else [])
    finally:
        conn.close()
    return revision, tables, images, jobs


def _wanted_files(images: list[tuple[str, str]], jobs: list[int]) -> tuple[list[str], list[str]]:
    """(image store keys, data-dir-relative job files) to put in the archive, originals first.

    A key is also the file's path in a local data dir, so the archive restores
    as one whatever store the files came from.
    """
    keys = [stored for _, stored in images]
    for sha, _ in images:
        keys += [store.thumb_key(sha), store.preview_key(sha)]
    return keys, [f"jobs/job-{job_id}/{name}" for job_id in jobs for name in JOB_FILES]


def make_backup(settings: Settings, out: Path) -> BackupReport:
    started = time.monotonic()
    src = sqlite_path(settings)
    out = out.expanduser().resolve()
    if out.is_dir():
        raise InvalidInput(f"{out} is a folder; give the backup file's name, e.g. {out / 'loupe-backup.tar'}")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    db_copy = out.with_name(out.name + ".db.partial")
    try:
        copy_database(src, db_copy)
        revision, tables, images, jobs = _contents(db_copy)
        report = BackupReport(out=out, revision=revision, tables=tables)
        listed: list[dict] = []
        keys, job_files = _wanted_files(images, jobs)
        files = blobs.for_settings(settings)
        with tarfile.open(partial, "w") as tar:
            _add(tar, db_copy, DB_NAME, listed)
            for key in keys:
                try:
                    _add_blob(tar, files, key, listed)
                except FileNotFoundError:
                    if key.startswith("store/"):
                        report.missing.append(key)  # an original that is gone: say so, back up the rest
            for rel in job_files:
                path = settings.data_dir / rel
                if path.is_file():
                    _add(tar, path, rel, listed)
            manifest = {
                "format": FORMAT, "created_at": utcnow().isoformat() + "Z", "revision": revision,
                "tables": tables, "files": listed, "missing": report.missing,
            }
            _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=1).encode())
        with open(partial, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
        db_copy.unlink(missing_ok=True)
    report.files = len(listed)
    report.bytes = out.stat().st_size
    report.seconds = time.monotonic() - started
    return report


def _add(tar: tarfile.TarFile, path: Path, name: str, listed: list[dict]) -> None:
    info = tarfile.TarInfo(name)
    info.size = path.stat().st_size
    info.mtime = int(path.stat().st_mtime)
    with open(path, "rb") as f:
        hashing = _Hashing(f)
        tar.addfile(info, hashing)
    listed.append({"path": name, "bytes": info.size, "sha256": hashing.sha.hexdigest()})


def _add_blob(tar: tarfile.TarFile, files: blobs.Blobs, key: str, listed: list[dict]) -> None:
    path = files.local_path(key)
    if path is not None:
        if not path.is_file():
            raise FileNotFoundError(key)
        _add(tar, path, key, listed)
        return
    info = tarfile.TarInfo(key)
    info.size = files.size(key)
    info.mtime = int(time.time())
    with files.open(key) as f:
        hashing = _Hashing(f)
        tar.addfile(info, hashing)
    listed.append({"path": key, "bytes": info.size, "sha256": hashing.sha.hexdigest()})


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(time.time())
    tar.addfile(info, io.BytesIO(data))
