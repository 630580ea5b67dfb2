"""Zip archives: refuse bombs, unsafe names, links and nesting; read members as bytes.

Members are never extracted to disk: their bytes go straight to the decoder,
so a hostile name can at worst be refused, never written.
"""

from __future__ import annotations

import stat
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import BinaryIO

from app.images.decode import Unreadable, size_text, too_big


@dataclass(frozen=True)
class ArchiveLimits:
    max_zip_bytes: int
    max_zip_entries: int


@dataclass(frozen=True)
class Member:
    """What to do with one entry of an archive."""

    name: str
    info: zipfile.ZipInfo | None = None  # set when it should be read as an image
    error: str | None = None  # set when it is refused
    # neither: ignored (not an image, __MACOSX/, dotfile)


def open_archive(file: str | BinaryIO, limits: ArchiveLimits) -> zipfile.ZipFile:
    """Open a zip and check its declared sizes before anything is read."""
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError) as exc:
        raise Unreadable(f"not a readable zip archive ({exc})") from None
    infos = archive.infolist()
    if len(infos) > limits.max_zip_entries:
        archive.close()
        raise Unreadable(
            f"archive has {len(infos):,} entries, over the limit of {limits.max_zip_entries:,} (LOUPE_MAX_ZIP_ENTRIES)"
        )
    total = sum(info.file_size for info in infos)
    if total > limits.max_zip_bytes:
        archive.close()
        raise Unreadable(
            f"archive expands to {size_text(total)}, over the limit of {size_text(limits.max_zip_bytes)} "
            "(LOUPE_MAX_ZIP_BYTES)"
        )
    return archive


def members(archive: zipfile.ZipFile, image_extensions: frozenset[str]) -> Iterator[Member]:
    """Classify each entry: an image to read, a refusal with its reason, or ignored."""
    for info in archive.infolist():
        name = info.filename
        if info.is_dir():
            continue
        if _unsafe(name):
            yield Member(name, error="unsafe path in archive (absolute, or containing '..'); entry not read")
            continue
        if stat.S_ISLNK(info.external_attr >> 16):
            yield Member(name, error="symbolic links in archives are not read")
            continue
        path = PurePosixPath(name.replace("\\", "/"))
        if "__MACOSX" in path.parts or path.name.startswith("."):
            yield Member(name)
            continue
        suffix = path.suffix.lower()
        if suffix == ".zip":
            yield Member(name, error="nested archives are not read")
        elif suffix not in image_extensions:
            yield Member(name)
        elif info.flag_bits & 0x1:
            yield Member(name, error="encrypted zip entries are not read")
        else:
            yield Member(name, info=info)


def _unsafe(name: str) -> bool:
    normal = name.replace("\\", "/")
    if normal.startswith("/") or (len(normal) > 1 and normal[1] == ":"):
        return True
    return ".." in normal.split("/")


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, max_file_bytes: int) -> bytes:
    """The member's bytes; zipfile stops at the declared size and checks the CRC."""
    if info.file_size > max_file_bytes:
        raise too_big(info.file_size, max_file_bytes)
    try:
        with archive.open(info) as f:
            return f.read()
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as exc:
        raise Unreadable(f"damaged zip entry ({exc})") from None
