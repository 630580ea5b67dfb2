"""Files over HTTP: send one from the image store (in place from a local disk, streamed through from a remote
store); save an uploaded one for the length of a request.

A remote store's files go through this server rather than as a redirect to a
presigned URL: the browser then needs neither a route to the bucket (often
an internal address in a compose network) nor a bearer URL that outlives the
login, and responses keep the same origin, caching and headers either way.
"""

from __future__ import annotations

import mimetypes
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from fastapi import UploadFile
from fastapi.responses import FileResponse, Response, StreamingResponse

from app.config import Settings
from app.errors import NotFound
from app.images.blobs import Blobs
from app.images.store import CHUNK

# Thumbnails and previews are a few KB: read in the route's thread and sent in one piece. FileResponse
# would stat, open, read and close each in a thread-pool hop of its own, which under many labellers
# made a preview cost as much as a save; it stays for originals (range requests, any size).
SMALL_BYTES = 256 * 1024


def blob_response(blobs: Blobs, key: str, *, headers: dict[str, str], filename: str | None = None,
                  small: bool = False) -> Response:
    """The file under `key`, typed by its extension (the stored format, not the uploaded name); 404 when missing.

    `small`: the caller knows the file is small (a thumbnail or a preview).
    """
    media_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
    path = blobs.local_path(key)
    if path is not None and small and filename is None:
        try:
            with path.open("rb") as f:
                body = f.read(SMALL_BYTES + 1)
        except (FileNotFoundError, IsADirectoryError):
            raise NotFound(f"the file for this image is missing from the store ({key})") from None
        if len(body) <= SMALL_BYTES:
            return Response(body, media_type=media_type, headers=headers)
    if path is not None:
        if not path.is_file():
            raise NotFound(f"the file for this image is missing from the store ({key})")
        return FileResponse(path, media_type=media_type, headers=headers, filename=filename,
                            content_disposition_type="inline")
    try:
        size, chunks = blobs.stream(key)
    except FileNotFoundError:
        raise NotFound(f"the file for this image is missing from the store ({key})") from None
    extra = {"Content-Length": str(size)}
    if filename:
        quoted = quote(filename)  # as FileResponse writes it
        extra["Content-Disposition"] = (f"inline; filename*=utf-8''{quoted}" if quoted != filename
                                        else f'inline; filename="{filename}"')
    return StreamingResponse(chunks, media_type=media_type, headers={**headers, **extra})


@contextmanager
def upload_dir(settings: Settings) -> Iterator[Path]:
    """A private folder for files a request saves (on the data dir's disk), removed when the request is done."""
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="upload-", dir=settings.tmp_dir))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def save_upload(folder: Path, upload: UploadFile) -> Path:
    """Save an uploaded file under its own base name (formats are recognised by name, e.g. metadata.jsonl);
    a name that is empty or hidden gets a neutral one."""
    name = PurePosixPath((upload.filename or "").replace("\\", "/")).name
    path = folder / (name if name and not name.startswith(".") else "labels")
    with path.open("wb") as out:
        shutil.copyfileobj(upload.file, out, CHUNK)
    return path
