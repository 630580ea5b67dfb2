"""Export a snapshot: an ImageFolder tree (split/class/file), or files plus a CSV or JSONL manifest.

Exported files keep their original bytes and are named
``<first 16 hex digits of sha256>-<original name>`` so names never collide.
Every export writes a manifest (path, label, source, confidence, tags, split,
fold, sha256, image id); `loupe import --labels` reads it back.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import time
import uuid
import zipfile
from pathlib import Path, PurePosixPath

from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.models import Image, LabelEvent, Snapshot, SnapshotItem, Source
from app.errors import InvalidInput
from app.images import blobs
from app.images.store import CHUNK
from app.snapshots.queries import class_names

FORMATS = ("imagefolder", "csv", "jsonl")
COLUMNS = ("path", "label", "source", "confidence", "tags", "split", "fold", "sha256", "image")


def file_name(sha256: str, original: str, stored: str) -> str:
    stem = PurePosixPath(original.replace("\\", "/")).stem
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")[:60]
    ext = PurePosixPath(stored).suffix
    return f"{sha256[:16]}-{stem}{ext}" if stem else f"{sha256[:16]}{ext}"


def folder_name(name: str) -> str:
    """A class name usable as one folder name (no separators, not hidden)."""
    safe = re.sub(r"[/\\\x00]", "_", name)
    return "_" + safe[1:] if safe.startswith(".") else safe


def manifest(session: Session, snapshot: Snapshot, *, layout: str) -> list[dict]:
    """One row per image; `path` is relative to the export folder (split/class/file, or images/file).

    Each row also carries the private key `_stored`: the original's key in the image store.
    """
    names = class_names(snapshot)
    q = (
        select(SnapshotItem.image_id, SnapshotItem.class_id, SnapshotItem.split, SnapshotItem.fold, Image.sha256,
               Image.original_filename, Image.stored_path, Source.name, LabelEvent.confidence,
               cast(LabelEvent.tags, Text))
        .select_from(SnapshotItem)
        .join(Image, Image.id == SnapshotItem.image_id)
        .join(Source, Source.id == Image.source_id)
        .join(LabelEvent, LabelEvent.id == SnapshotItem.label_event_id)
        .where(SnapshotItem.snapshot_id == snapshot.id)
        .order_by(SnapshotItem.split, SnapshotItem.class_id, SnapshotItem.image_id)
    )
    rows = []
    for image_id, class_id, split, fold, sha, original, stored, source, confidence, tags in session.execute(q):
        label = names[class_id]
        name = file_name(sha, original, stored)
        path = f"{split}/{folder_name(label)}/{name}" if layout == "imagefolder" else f"images/{name}"
        rows.append({
            "path": path, "label": label, "source": source, "confidence": confidence,
            "tags": json.loads(tags) if tags and tags != "[]" else [], "split": split, "fold": fold,
            "sha256": sha, "image": image_id, "_stored": stored,
        })
    return rows


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([";".join(r["tags"]) if c == "tags" else "" if r[c] is None else r[c] for c in COLUMNS])
    return buf.getvalue()


def to_jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps({c: r[c] for c in COLUMNS}, ensure_ascii=False) + "\n" for r in rows)


def manifest_text(session: Session, snapshot: Snapshot, fmt: str) -> str:
    """The CSV or JSONL manifest alone (what the web app offers for download)."""
    if fmt not in ("csv", "jsonl"):
        raise InvalidInput(f"format must be csv or jsonl, not '{fmt}'")
    rows = manifest(session, snapshot, layout="flat")
    return to_csv(rows) if fmt == "csv" else to_jsonl(rows)


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidInput(f"{out} already exists and is not an empty folder; pick a new one")


def export_snapshot(session: Session, settings: Settings, snapshot: Snapshot, *, fmt: str, out: Path) -> dict:
    """Write the snapshot to the new folder `out`; it appears complete or not at all."""
    if fmt not in FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(FORMATS)}, not '{fmt}'")
    out = Path(out)
    _check_out(out)
    rows = manifest(session, snapshot, layout="imagefolder" if fmt == "imagefolder" else "flat")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
    store = blobs.for_settings(settings)
    try:
        made: set[Path] = set()
        for r in rows:
            target = partial / r["path"]
            if target.parent not in made:
                target.parent.mkdir(parents=True, exist_ok=True)
                made.add(target.parent)
            store.fetch(r["_stored"], target)
        text = to_jsonl(rows) if fmt == "jsonl" else to_csv(rows)
        (partial / ("manifest.jsonl" if fmt == "jsonl" else "manifest.csv")).write_text(text, encoding="utf-8")
        if out.exists():
            out.rmdir()
        os.rename(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    splits: dict[str, int] = {}
    for r in rows:
        splits[r["split"]] = splits.get(r["split"], 0) + 1
    return {"images": len(rows), "splits": splits, "out": str(out)}


def export_zip(session: Session, settings: Settings, snapshot: Snapshot, dest: Path) -> None:
    """The ImageFolder layout and manifest.csv as one zip file (stored, not compressed: images already are)."""
    rows = manifest(session, snapshot, layout="imagefolder")
    store = blobs.for_settings(settings)
    stamp = time.localtime()[:6]
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.writestr("manifest.csv", to_csv(rows))
        for r in rows:
            info = zipfile.ZipInfo(r["path"], stamp)
            info.external_attr = 0o644 << 16  # a plain readable file when unzipped
            with store.open(r["_stored"]) as src, zf.open(info, "w", force_zip64=True) as out:
                shutil.copyfileobj(src, out, CHUNK)
