"""Import images: the one function behind `loupe import` and `POST /api/images`.

Workers decode and write temporary files (see `pipeline`); this process moves
them into the store and writes the rows, in chunks, each in one transaction.
A file is either fully imported (store, thumbnail, preview and row) or not at
all; a bad file is reported and the rest go on.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select

from app.config import Settings
from app.db.engine import Database
from app.db.models import Image, ImportBatch, Source
from app.errors import InvalidInput
from app.images import blobs, collect, pipeline, store
from app.images.archive import ArchiveLimits
from app.images.decode import Limits

log = logging.getLogger("loupe.import")

COMMIT_EVERY = 200
COMMIT_AFTER_S = 2.0  # so that images show up in the app during a long import
MAX_SOURCE_NAME = 200

Progress = Callable[[int, int | None], None]


@dataclass
class ImportReport:
    imported: list[dict] = field(default_factory=list)  # {"id", "filename", "sha256"}
    duplicates: list[dict] = field(default_factory=list)  # {"id", "filename"}: id of the image already there
    rejected: list[dict] = field(default_factory=list)  # {"filename", "error"}
    ignored: int = 0  # skipped while walking folders and zips: not images, __MACOSX/, dotfiles

    def as_dict(self) -> dict:
        return asdict(self)


def import_paths(
    db: Database,
    settings: Settings,
    paths: list[Path],
    *,
    source: str,
    origin: str = "cli",
    on_progress: Progress | None = None,
) -> ImportReport:
    """Import files, folders (recursively) and zip archives from disk."""
    name = _source_name(source)
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise InvalidInput(f"no such file or folder: {', '.join(missing)}")
    with ExitStack() as stack:
        found = collect.from_paths(list(paths), _archive_limits(settings), stack)
        return _import(db, settings, found, source=name, origin=origin, on_progress=on_progress)


def import_uploads(
    db: Database, settings: Settings, uploads: list[tuple[str, BinaryIO]], *, source: str
) -> ImportReport:
    """Import uploaded files; each upload is (filename, file object) and a .zip counts as its members."""
    name = _source_name(source)
    with ExitStack() as stack:
        found = collect.from_uploads(uploads, _archive_limits(settings), stack)
        return _import(db, settings, found, source=name, origin="upload", on_progress=None)


def _source_name(source: str) -> str:
    name = (source or "").strip()
    if not name:
        raise InvalidInput("source must not be empty: say where these images come from")
    if len(name) > MAX_SOURCE_NAME:
        raise InvalidInput(f"source name is {len(name)} characters long, over the limit of {MAX_SOURCE_NAME}")
    return name


def _archive_limits(settings: Settings) -> ArchiveLimits:
    return ArchiveLimits(max_zip_bytes=settings.max_zip_bytes, max_zip_entries=settings.max_zip_entries)


def _import(
    db: Database, settings: Settings, found: collect.Collection, *, source: str, origin: str, on_progress
) -> ImportReport:
    report = ImportReport(rejected=list(found.rejected), ignored=found.ignored)
    settings.ensure_dirs()
    source_id, batch_id = _start_batch(db, source, origin)
    workdir = Path(tempfile.mkdtemp(prefix="import-", dir=settings.tmp_dir))
    job = pipeline.Job(
        limits=Limits(settings.max_pixels, settings.thumb_size, settings.preview_size),
        max_file_bytes=settings.max_file_bytes,
        workdir=str(workdir),
    )
    writer = _Writer(db, settings, report, source_id=source_id, batch_id=batch_id)
    total = len(found.entries)
    try:
        for done, result in enumerate(
            pipeline.run(job, found.entries, lambda e: collect.load(e, settings.max_file_bytes)), 1
        ):
            if isinstance(result, pipeline.Failed):
                report.rejected.append({"filename": result.filename, "error": result.error})
            else:
                writer.add(result)
            if on_progress:
                on_progress(done, total)
        writer.flush()
    finally:
        # Whatever was not moved into the store (duplicates, a failed chunk) goes.
        shutil.rmtree(workdir, ignore_errors=True)
    if on_progress and total == 0:
        on_progress(0, 0)
    return report


def _start_batch(db: Database, name: str, origin: str) -> tuple[int, int]:
    with db.writing() as session:
        source = session.scalars(select(Source).where(Source.name == name)).first()
        if source is None:
            source = Source(name=name)
            session.add(source)
            session.flush()
        batch = ImportBatch(source_id=source.id, origin=origin)
        session.add(batch)
        session.commit()
        return source.id, batch.id


class _Writer:
    """Collects prepared images and commits them in chunks."""

    def __init__(self, db: Database, settings: Settings, report: ImportReport, *, source_id: int, batch_id: int):
        self.db, self.settings, self.report = db, settings, report
        self.source_id, self.batch_id = source_id, batch_id
        self.blobs = blobs.for_settings(settings)
        self.pending: list[pipeline.Prepared] = []
        self.since = time.monotonic()

    def add(self, item: pipeline.Prepared) -> None:
        self.pending.append(item)
        if len(self.pending) >= COMMIT_EVERY or time.monotonic() - self.since > COMMIT_AFTER_S:
            self.flush()

    def flush(self) -> None:
        items, self.pending, self.since = self.pending, [], time.monotonic()
        if not items:
            return
        with self.db.reading() as session:
            known = self._known(session, {item.sha256 for item in items})
        first: dict[str, pipeline.Prepared] = {}
        for item in items:
            if item.sha256 not in known:
                first.setdefault(item.sha256, item)
        # Files go into the store before the rows that name them (a backup relies on it), and outside
        # the write transaction: an upload to a remote store must not hold the database's write lock.
        created: list[tuple[str, str]] = []  # (sha256, key) of each file this chunk added to the store
        try:
            for item in first.values():
                self._put(item, created)
            with self.db.writing() as session:
                known |= self._known(session, set(first))  # another import may have added some meanwhile
                new = {sha: self._row(item) for sha, item in first.items() if sha not in known}
                session.add_all(new.values())
                session.flush()  # ids for the report and for duplicates within this chunk
                ids = {sha: image.id for sha, image in new.items()}
                session.commit()
        except BaseException:
            self._take_back(created)
            raise
        for item in items:
            if item.sha256 in ids and first[item.sha256] is item:
                self.report.imported.append({"id": ids[item.sha256], "filename": item.filename, "sha256": item.sha256})
            else:
                image_id = known.get(item.sha256) or ids[item.sha256]
                self.report.duplicates.append({"id": image_id, "filename": item.filename})

    @staticmethod
    def _known(session, shas: set[str]) -> dict[str, int]:
        return dict(session.execute(select(Image.sha256, Image.id).where(Image.sha256.in_(shas))).all())

    def _put(self, item: pipeline.Prepared, created: list[tuple[str, str]]) -> None:
        keys = store.keys(item.sha256, store.stored_path(item.sha256, item.ext))
        for temp, key in zip((item.original, item.thumb, item.preview), keys):
            if self.blobs.put(Path(temp), key):
                created.append((item.sha256, key))

    def _take_back(self, created: list[tuple[str, str]]) -> None:
        """Remove the files this chunk added, but not those a row names by now (a concurrent import's)."""
        if not created:
            return
        try:
            with self.db.reading() as session:
                kept = self._known(session, {sha for sha, _ in created})
            for sha, key in created:
                if sha not in kept:
                    self.blobs.delete(key)
        except Exception:  # the store or database is down: say so, and let the first error through
            log.exception("could not remove the files of a failed import from %s", self.blobs.url)

    def _row(self, item: pipeline.Prepared) -> Image:
        return Image(
            sha256=item.sha256,
            stored_path=store.stored_path(item.sha256, item.ext),
            original_filename=item.filename[:1000],
            source_id=self.source_id,
            batch_id=self.batch_id,
            width=item.width,
            height=item.height,
            format=item.format,
            mode=item.mode,
            byte_size=item.byte_size,
            phash=item.phash,
        )
