"""`loupe restore`: unpack a backup into a new data dir, checking every byte before it goes live.

Nothing is unpacked over existing data: the archive is extracted into a
temporary folder beside the target, each file is checked against the
manifest's sha256 and the database against `PRAGMA integrity_check`, and only
then is the folder renamed into place. Member names are checked before
anything is written, so an archive with odd paths cannot write outside it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from app.backup.make import DB_NAME, FORMAT, MANIFEST
from app.db.migrate import upgrade_head
from app.errors import InvalidInput

TOP_FOLDERS = ("store", "thumbs", "previews", "jobs")


@dataclass
class RestoreReport:
    data_dir: Path
    revision: str
    tables: dict[str, int]
    files: int


def _safe_name(name: str) -> bool:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or "\\" in name or "\x00" in name:
        return False
    return name in (DB_NAME, MANIFEST) or (len(path.parts) > 1 and path.parts[0] in TOP_FOLDERS)


def _extract(tar: tarfile.TarFile, into: Path) -> tuple[dict, dict[str, str]]:
    """(the manifest, sha256 of each file written): files are hashed as they are written, in one pass."""
    manifest, written = None, {}
    for member in tar:
        if not member.isfile() or not _safe_name(member.name):
            raise InvalidInput(f"not a Loupe backup: unexpected entry {member.name!r}")
        source = tar.extractfile(member)
        if member.name == MANIFEST:
            manifest = json.loads(source.read())
            continue
        target = into / member.name
        target.parent.mkdir(parents=True, exist_ok=True)
        sha = hashlib.sha256()
        with open(target, "wb") as out:
            for chunk in iter(lambda: source.read(1 << 20), b""):
                sha.update(chunk)
                out.write(chunk)
        written[member.name] = sha.hexdigest()
    if manifest is None:
        raise InvalidInput("not a Loupe backup: it has no manifest.json")
    return manifest, written


def _verify(into: Path, manifest: dict, written: dict[str, str]) -> None:
    if manifest.get("format") != FORMAT:
        raise InvalidInput(f"backup format {manifest.get('format')!r} is not one this Loupe reads ({FORMAT})")
    for entry in manifest["files"]:
        if entry["path"] not in written:
            raise InvalidInput(f"the backup is incomplete: {entry['path']} is missing")
        if written[entry["path"]] != entry["sha256"]:
            raise InvalidInput(f"the backup is damaged: {entry['path']} does not match its checksum")
    conn = sqlite3.connect(into / DB_NAME)
    try:
        check = conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()
    if check != "ok":
        raise InvalidInput(f"the backup's database failed its integrity check: {check}")


def restore_backup(archive: Path, data_dir: Path) -> RestoreReport:
    archive, data_dir = archive.expanduser().resolve(), data_dir.expanduser().resolve()
    if not archive.is_file():
        raise InvalidInput(f"no such backup file: {archive}")
    if data_dir.exists() and any(data_dir.iterdir()):
        raise InvalidInput(f"{data_dir} is not empty; restore into a new folder (nothing is overwritten)")
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = data_dir.with_name(f".{data_dir.name}.restoring-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                manifest, written = _extract(tar, staging)
        except (tarfile.TarError, EOFError, json.JSONDecodeError, KeyError) as exc:
            raise InvalidInput(f"not a readable Loupe backup: {exc}") from None
        _verify(staging, manifest, written)
        if data_dir.exists():
            data_dir.rmdir()
        staging.rename(data_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    # A backup from an older Loupe is brought up to this version's schema.
    upgrade_head(f"sqlite:///{data_dir / DB_NAME}")
    return RestoreReport(data_dir=data_dir, revision=manifest["revision"], tables=manifest["tables"],
                         files=len(manifest["files"]))
