"""Where each image file goes: keys of the content-addressed store (and their check), and copies that never
leave half a file.

An original is kept at the key ``store/ab/cd/<sha256><ext>`` with its bytes
unchanged; its thumbnail and preview are JPEGs at ``thumbs/ab/cd/<sha256>.jpg``
and ``previews/ab/cd/<sha256>.jpg``. A key is also the file's path relative to
the data dir on the local store (`app.images.blobs` holds the files).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO

from app.config import ORIGINALS, PREVIEWS, THUMBS
from app.errors import InvalidInput

if TYPE_CHECKING:  # worker processes import this module and need neither
    from app.config import Settings
    from app.db.models import Image


def _shard(sha256: str) -> str:
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


def stored_path(sha256: str, ext: str) -> str:
    """`Image.stored_path`: the original's key (its path relative to a local data dir)."""
    return f"{ORIGINALS}/{_shard(sha256)}{ext}"


def thumb_key(sha256: str) -> str:
    return f"{THUMBS}/{_shard(sha256)}.jpg"


def preview_key(sha256: str) -> str:
    return f"{PREVIEWS}/{_shard(sha256)}.jpg"


def keys(sha256: str, stored: str) -> tuple[str, str, str]:
    """An image's original, thumbnail and preview keys."""
    return stored, thumb_key(sha256), preview_key(sha256)


# Paths on the local store (the data dir), for tools and tests that look at the files themselves.

def original_path(settings: Settings, image: Image) -> Path:
    return settings.data_dir / image.stored_path


def thumb_path(settings: Settings, sha256: str) -> Path:
    return settings.data_dir / thumb_key(sha256)


def preview_path(settings: Settings, sha256: str) -> Path:
    return settings.data_dir / preview_key(sha256)


def write_temp(directory: Path, data: bytes) -> Path:
    """Write `data` to a new uniquely named file in `directory` (on the data dir's filesystem)."""
    path = directory / uuid.uuid4().hex
    with open(path, "wb") as f:
        f.write(data)
    return path


CHUNK = 1 << 20  # bytes per read when copying a file


def check_key(key: str) -> str:
    """Keys come from the database: one that could point outside the store is refused, not followed."""
    path = PurePosixPath(key)
    if not key or path.is_absolute() or ".." in path.parts or "\\" in key or "\x00" in key:
        raise InvalidInput(f"not a key of the image store: {key!r}")
    return key


def atomic_copy(src: BinaryIO, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    temp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        with src, open(temp, "wb") as out:
            shutil.copyfileobj(src, out, CHUNK)
        os.replace(temp, dest)
    finally:
        temp.unlink(missing_ok=True)
