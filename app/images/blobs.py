"""The image store: originals, thumbnails and previews, under the data dir or in an S3-compatible bucket.

Everything that reads or writes image files goes through `Blobs`. A key is a
path relative to the store's root (`app.images.store` makes them) and is the
same on every backend, so an existing data dir is a local store as it is, and
its `store/`, `thumbs/` and `previews/` folders can be copied into a bucket
as they are. Files are written once and never change (content-addressed);
`delete` exists only to take back the files of an import that failed.
`LOUPE_STORE_URL` picks the backend (see `for_settings`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

from app.images.store import CHUNK, atomic_copy, check_key

if TYPE_CHECKING:
    from app.config import Settings



class Blobs(Protocol):
    url: str  # where the store is, for messages

    def put(self, temp: Path, key: str) -> bool:
        """Move the finished local file `temp` under `key` (gone from `temp` after); True when `key` was new."""

    def open(self, key: str) -> BinaryIO:
        """The file for reading; FileNotFoundError when there is none."""

    def stream(self, key: str) -> tuple[int, Iterator[bytes]]:
        """(size, chunks) to send the file on; FileNotFoundError (before any chunk) when there is none."""

    def exists(self, key: str) -> bool: ...

    def check(self) -> None:
        """Unavailable when the store cannot be used (checked when a server or worker starts)."""

    def size(self, key: str) -> int:
        """Bytes; FileNotFoundError when there is no such file."""

    def delete(self, key: str) -> None:
        """Remove the file if it is there (only to roll back a failed import)."""

    def local_path(self, key: str) -> Path | None:
        """The file itself when it is on this machine's disk (then it is read and sent in place), else None."""

    def fetch(self, key: str, dest: Path) -> None:
        """Copy the file to `dest`, which appears complete or not at all; FileNotFoundError when there is none."""


class LocalBlobs:
    """Files under a folder (the data dir): temp file + os.replace, so a key never holds half a file."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.url = str(self.root)

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, temp: Path, key: str) -> bool:
        final = self.path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        created = not final.exists()
        os.replace(temp, final)
        return created

    def open(self, key: str) -> BinaryIO:
        return open(self.path(key), "rb")

    def stream(self, key: str) -> tuple[int, Iterator[bytes]]:
        f = self.open(key)
        size = os.fstat(f.fileno()).st_size

        def chunks() -> Iterator[bytes]:
            with f:
                yield from iter(lambda: f.read(CHUNK), b"")

        return size, chunks()

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def check(self) -> None:
        pass  # ensure_dirs made the folders; a disk error shows on the first write, with its path

    def size(self, key: str) -> int:
        return self.path(key).stat().st_size

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def local_path(self, key: str) -> Path | None:
        return self.path(key)

    def fetch(self, key: str, dest: Path) -> None:
        atomic_copy(self.open(key), dest)


def for_settings(settings: Settings) -> Blobs:
    """The store `LOUPE_STORE_URL` names: unset, the data dir; s3://BUCKET/PREFIX, that bucket."""
    return _open(settings.store_url, settings.s3_endpoint_url, str(settings.data_dir))


@lru_cache(maxsize=8)  # one S3 client per store and process: making one costs tens of milliseconds
def _open(url: str, endpoint_url: str, data_dir: str) -> Blobs:
    if not url:
        return LocalBlobs(Path(data_dir))
    from app.images.s3 import S3Blobs  # boto3 is only needed (and only installed) for an S3 store

    return S3Blobs(url, endpoint_url=endpoint_url or None)


def local_copies(
    blobs: Blobs,
    keys: list[str],
    cache_dir: Path,
    *,
    progress: Callable[[int], None] | None = None,
    cancelled: Callable[[], bool] = lambda: False,
    threads: int = 16,
) -> tuple[list[str], list[str]]:
    """Paths on this machine for `keys` (the files themselves, or copies under `cache_dir`), and the missing keys.

    Copies are kept for the next job: a key's bytes never change. A missing
    key still gets its path (where no file is), so the caller reports it.
    """
    paths = [blobs.local_path(k) for k in keys]
    if all(p is not None for p in paths):
        return [str(p) for p in paths], []
    missing: list[str] = []

    def one(key: str) -> None:
        target = cache_dir / check_key(key)
        if target.is_file():
            return
        try:
            blobs.fetch(key, target)
        except FileNotFoundError:
            missing.append(key)

    with ThreadPoolExecutor(threads) as pool:  # one object per request: latency, not bandwidth, is the limit
        for start in range(0, len(keys), 256):
            if cancelled():
                break
            list(pool.map(one, keys[start:start + 256]))
            if progress:
                progress(min(start + 256, len(keys)))
    return [str(cache_dir / k) for k in keys], sorted(missing)
