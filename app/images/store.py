"""Where each image file goes: keys of the content-addressed store, and temporary files.

An original is kept at the key ``store/ab/cd/<sha256><ext>`` with its bytes
unchanged; its thumbnail and preview are JPEGs at ``thumbs/ab/cd/<sha256>.jpg``
and ``previews/ab/cd/<sha256>.jpg``. A key is also the file's path relative to
the data dir on the local store (`app.images.blobs` holds the files).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # worker processes import this module and need neither
    from app.config import Settings
    from app.db.models import Image


def _shard(sha256: str) -> str:
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


def stored_path(sha256: str, ext: str) -> str:
    """`Image.stored_path`: the original's key (its path relative to a local data dir)."""
    return f"store/{_shard(sha256)}{ext}"


def thumb_key(sha256: str) -> str:
    return f"thumbs/{_shard(sha256)}.jpg"


def preview_key(sha256: str) -> str:
    return f"previews/{_shard(sha256)}.jpg"


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
