"""Export a snapshot in one of the formats of `app.formats.WRITERS`: an ImageFolder tree (split/class/file),
files plus a CSV or JSONL manifest, or another tool's dataset layout.

Exported files keep their original bytes and are named
``<first 16 hex digits of sha256>-<original name>`` so names never collide.
Every export writes loupe-export.json: the snapshot (id, name, hash), its
taxonomy version and classes, the format, the counts, and which fields of a
Loupe label the format drops. The csv / jsonl / imagefolder manifest (path,
label, source, confidence, tags, split, fold, sha256, image id) is read back by
`loupe import --labels`.
"""

from __future__ import annotations

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

from app import formats
from app.config import Settings
from app.db.models import Image, LabelEvent, Snapshot, SnapshotItem, Source, TaxonomyVersion
from app.errors import InvalidInput
from app.formats import WRITERS
from app.formats import manifest as loupe_manifest
from app.images import blobs
from app.images.store import CHUNK
from app.labelling.suggestions import model_guesses
from app.snapshots import sets
from app.snapshots.queries import class_names
from app.timeutil import iso, utcnow

FORMATS = tuple(WRITERS)
SET_FORMATS = ("csv", "jsonl", "hf", "label-studio")  # the formats a multi-label snapshot's sets go out in
INFO = "loupe-export.json"


def file_name(sha256: str, original: str, stored: str) -> str:
    stem = PurePosixPath(original.replace("\\", "/")).stem
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")[:60]
    ext = PurePosixPath(stored).suffix
    return f"{sha256[:16]}-{stem}{ext}" if stem else f"{sha256[:16]}{ext}"


def manifest(session: Session, snapshot: Snapshot, *, fmt: str) -> list[dict]:
    """One row per image; `path` is where the format puts it, relative to the export folder.

    Each row also carries `name` (the exported file's name), `annotator` and `labelled_at` (of the label event
    frozen), the image's `width` and `height`, and the private key `_stored`: the original's key in the store;
    for a writer with `PREDICTIONS`, `prediction`: the latest model's guess ({"class", "p", "model"}) or None.
    """
    writer = formats.module(fmt, WRITERS)
    names = class_names(snapshot)
    multi = sets.is_multi(session, snapshot)
    if multi and fmt not in SET_FORMATS:
        raise InvalidInput(f"snapshot '{snapshot.name}' holds sets of classes (multi-label): {fmt} carries one "
                           f"class per image; export it as {', '.join(SET_FORMATS)} (the sets in `classes`, hf: "
                           "`labels`, Label Studio: several choices)")
    q = (
        select(SnapshotItem.image_id, SnapshotItem.class_id, SnapshotItem.split, SnapshotItem.fold, Image.sha256,
               Image.original_filename, Image.stored_path, Source.name, LabelEvent.confidence,
               cast(LabelEvent.tags, Text), LabelEvent.annotator, LabelEvent.created_at, Image.width, Image.height,
               SnapshotItem.label_event_id)
        .select_from(SnapshotItem)
        .join(Image, Image.id == SnapshotItem.image_id)
        .join(Source, Source.id == Image.source_id)
        .join(LabelEvent, LabelEvent.id == SnapshotItem.label_event_id)
        .where(SnapshotItem.snapshot_id == snapshot.id)
        .order_by(SnapshotItem.split, SnapshotItem.class_id, SnapshotItem.image_id)
    )
    rows = []
    events = []
    for (image_id, class_id, split, fold, sha, original, stored, source, confidence, tags, annotator,
         made_at, width, height, event_id) in session.execute(q):
        events.append(event_id)
        row = {"label": names.get(class_id, ""), "source": source, "confidence": confidence,
               "tags": json.loads(tags) if tags and tags != "[]" else [], "split": split, "fold": fold,
               "sha256": sha, "image": image_id, "name": file_name(sha, original, stored), "annotator": annotator,
               "labelled_at": iso(made_at), "width": width, "height": height, "_stored": stored}
        row["path"] = writer.layout(row, fmt)
        rows.append(row)
    if multi:
        classes = sets.item_classes(session, snapshot, events)
        for r, event_id in zip(rows, events):
            r["classes"] = classes.get(event_id, [])
    if getattr(writer, "PREDICTIONS", False) and not multi:  # pre-annotations: the latest model's guesses (one
        # class each; a set's are not written)
        guesses = model_guesses(session, [r["image"] for r in rows])
        for r in rows:
            r["prediction"] = guesses.get(r["image"])
    return rows


def manifest_text(session: Session, snapshot: Snapshot, fmt: str) -> str:
    """The CSV or JSONL manifest alone (what the web app offers for download)."""
    if fmt not in ("csv", "jsonl"):
        raise InvalidInput(f"format must be csv or jsonl, not '{fmt}'")
    rows = manifest(session, snapshot, fmt=fmt)
    return loupe_manifest.to_csv(rows) if fmt == "csv" else loupe_manifest.to_jsonl(rows)


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidInput(f"{out} already exists and is not an empty folder; pick a new one")


def export_snapshot(session: Session, settings: Settings, snapshot: Snapshot, *, fmt: str, out: Path) -> dict:
    """Write the snapshot to the new folder `out`; it appears complete or not at all."""
    if fmt not in FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(FORMATS)}, not '{fmt}'")
    out = Path(out)
    _check_out(out)
    rows = manifest(session, snapshot, fmt=fmt)
    writer = formats.module(fmt, WRITERS)
    info = _info(session, snapshot, fmt, rows, writer)
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
        writer.write(partial, rows, info, fmt)
        (partial / INFO).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        if out.exists():
            out.rmdir()
        os.rename(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return {"images": info["images"], "splits": info["splits"], "out": str(out)}


def _info(session: Session, snapshot: Snapshot, fmt: str, rows: list[dict], writer) -> dict:
    """What loupe-export.json says: which snapshot, under which taxonomy version, and what the format drops."""
    splits: dict[str, int] = {}
    for r in rows:
        splits[r["split"]] = splits.get(r["split"], 0) + 1
    version = session.get(TaxonomyVersion, snapshot.taxonomy_version_id)
    return {"loupe_export": 1, "format": fmt, "snapshot": {"id": snapshot.id, "name": snapshot.name,
                                                           "hash": snapshot.hash},
            "taxonomy_version": version.number if version else None,
            "classes": [c["name"] for c in snapshot.classes], "images": len(rows), "splits": splits,
            "drops": list(writer.DROPS) + list(getattr(writer, "SET_DROPS", ()) if rows and "classes" in rows[0]
                                               else ()), "exported_at": iso(utcnow())}


def export_zip(session: Session, settings: Settings, snapshot: Snapshot, dest: Path, fmt: str = "imagefolder") -> None:
    """The export as one zip file (stored, not compressed: images already are). ImageFolder streams each image
    from the store into the zip; another format is written to a folder first (its writer may read the files),
    then zipped."""
    if fmt != "imagefolder":
        folder = settings.tmp_dir / f"export-{uuid.uuid4().hex[:8]}"
        try:
            export_snapshot(session, settings, snapshot, fmt=fmt, out=folder)
            with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
                for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                    zf.write(path, path.relative_to(folder).as_posix())
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    rows = manifest(session, snapshot, fmt="imagefolder")
    info = _info(session, snapshot, fmt, rows, loupe_manifest)
    store = blobs.for_settings(settings)
    stamp = time.localtime()[:6]
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.writestr("manifest.csv", loupe_manifest.to_csv(rows))
        zf.writestr(INFO, json.dumps(info, indent=2, ensure_ascii=False) + "\n")
        for r in rows:
            entry = zipfile.ZipInfo(r["path"], stamp)
            entry.external_attr = 0o644 << 16  # a plain readable file when unzipped
            with store.open(r["_stored"]) as src, zf.open(entry, "w", force_zip64=True) as out:
                shutil.copyfileobj(src, out, CHUNK)
