"""Content-addressed files under the data dir: originals, thumbnails, previews.

An original lives at ``store/ab/cd/<sha256><ext>`` with its bytes unchanged;
its thumbnail and preview are JPEGs at ``thumbs/ab/cd/<sha256>.jpg`` and
``previews/ab/cd/<sha256>.jpg``. Files are written to a temporary name under
the data dir first and moved into place with ``os.replace``, so a final path
never holds half a file.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # worker processes import this module and need neither
    from app.config import Settings
    from app.db.models import Image


def _shard(sha256: str) -> Path:
    return Path(sha256[:2], sha256[2:4])


def stored_path(sha256: str, ext: str) -> str:
    """`Image.stored_path`: the original's path relative to the data dir, with / separators."""
    return f"store/{sha256[:2]}/{sha256[2:4]}/{sha256}{ext}"


def original_path(settings: Settings, image: Image) -> Path:
    return settings.data_dir / image.stored_path


def thumb_path(settings: Settings, sha256: str) -> Path:
    return settings.thumbs_dir / _shard(sha256) / f"{sha256}.jpg"


def preview_path(settings: Settings, sha256: str) -> Path:
    return settings.previews_dir / _shard(sha256) / f"{sha256}.jpg"


def write_temp(directory: Path, data: bytes) -> Path:
    """Write `data` to a new uniquely named file in `directory` (on the data dir's filesystem)."""
    path = directory / uuid.uuid4().hex
    with open(path, "wb") as f:
        f.write(data)
    return path


def place(temp: Path, final: Path) -> bool:
    """Move a finished temporary file to its final path; True when that path was new."""
    final.parent.mkdir(parents=True, exist_ok=True)
    created = not final.exists()
    os.replace(temp, final)
    return created


def remove(paths: list[Path]) -> None:
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
