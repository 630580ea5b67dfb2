"""Turn what the user gave (paths, uploads) into a list of files to import.

Folders are walked (hidden folders and __MACOSX/ skipped), zips are opened and
their members listed; nothing is read yet. An entry is read into a `Task` only
when the pipeline is ready for it, so a large zip is never held in memory.
"""

from __future__ import annotations

import os
import zipfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from app.images import archive
from app.images.decode import IMAGE_EXTENSIONS, Unreadable, too_big
from app.images.pipeline import Task


@dataclass
class Entry:
    """One file to import, from disk, from a zip, or uploaded."""

    filename: str  # as reported and stored: folder/sub/x.png, batch.zip/dir/x.png
    path: Path | None = None
    zip: zipfile.ZipFile | None = None
    info: zipfile.ZipInfo | None = None
    upload: BinaryIO | None = None


@dataclass
class Collection:
    entries: list[Entry] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    ignored: int = 0

    def reject(self, filename: str, error: str) -> None:
        self.rejected.append({"filename": filename, "error": error})


def from_paths(paths: list[Path], limits: archive.ArchiveLimits, stack: ExitStack) -> Collection:
    """Everything under `paths`; explicit files are always tried, whatever their name."""
    found = Collection()
    for path in map(Path, paths):
        if path.is_dir():
            _walk(found, path, _display_name(path), limits, stack)
        elif path.suffix.lower() == ".zip":
            _add_archive(found, path, path.name, limits, stack)
        elif path.is_file():
            found.entries.append(Entry(path.name, path=path))
        else:
            found.reject(str(path), "not a regular file")
    return found


def from_uploads(uploads: list[tuple[str, BinaryIO]], limits: archive.ArchiveLimits, stack: ExitStack) -> Collection:
    found = Collection()
    for name, file in uploads:
        name = (name or "upload").lstrip("/")
        if name.lower().endswith(".zip"):
            _add_archive(found, file, name, limits, stack)
        else:
            found.entries.append(Entry(name, upload=file))
    return found


def _display_name(path: Path) -> str:
    return path.name or path.resolve().name or str(path)


def _walk(found: Collection, root: Path, display: str, limits: archive.ArchiveLimits, stack: ExitStack) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__MACOSX")
        rel = Path(dirpath).relative_to(root)
        for name in sorted(filenames):
            path = Path(dirpath, name)
            shown = "/".join((display, *rel.parts, name))
            suffix = path.suffix.lower()
            if name.startswith("."):
                found.ignored += 1
            elif suffix == ".zip":
                _add_archive(found, path, shown, limits, stack)
            elif suffix in IMAGE_EXTENSIONS:
                found.entries.append(Entry(shown, path=path))
            else:
                found.ignored += 1


def _add_archive(found: Collection, file, display: str, limits: archive.ArchiveLimits, stack: ExitStack) -> None:
    try:
        opened = stack.enter_context(archive.open_archive(file, limits))
    except Unreadable as exc:
        found.reject(display, str(exc))
        return
    for member in archive.members(opened, IMAGE_EXTENSIONS):
        shown = f"{display}/{member.name}"
        if member.error:
            found.reject(shown, member.error)
        elif member.info is None:
            found.ignored += 1
        else:
            found.entries.append(Entry(shown, zip=opened, info=member.info))


def load(entry: Entry, max_file_bytes: int) -> Task:
    """Make the entry ready for a worker: zip members and uploads as bytes, files by path."""
    if entry.path is not None:
        try:
            size = entry.path.stat().st_size
        except OSError as exc:
            raise Unreadable(f"cannot read file ({exc.strerror})") from None
        if size > max_file_bytes:
            raise too_big(size, max_file_bytes)
        return Task(entry.filename, path=str(entry.path), size=size)
    if entry.zip is not None:
        data = archive.read_member(entry.zip, entry.info, max_file_bytes)
        return Task(entry.filename, data=data, size=len(data))
    file = entry.upload
    try:
        file.seek(0, os.SEEK_END)
        size = file.tell()
        file.seek(0)
    except (OSError, AttributeError):
        size = None
    if size is not None and size > max_file_bytes:
        raise too_big(size, max_file_bytes)
    data = file.read(max_file_bytes + 1)
    if len(data) > max_file_bytes:
        raise too_big(len(data), max_file_bytes)
    return Task(entry.filename, data=data, size=len(data))
