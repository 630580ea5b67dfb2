"""Search by an uploaded image: the query job and its answer. No torch here (the worker embeds the query).

The web app checks the upload decodes (app.images.decode, the import's own
checks and limits), puts it in the image store under queries/ (so a worker on
another machine reads it as it reads originals) and queues a job of kind
"search" with the space to search. The worker (app.training.search) embeds the
one image with that space's model, finds its nearest neighbours in the space's
index and stores {"items": [{image, distance, class}]} as the job's metrics; it
deletes the query file once it has succeeded or failed. The upload is never imported: no
image row, no thumbnail, nothing in the dataset.
"""

from __future__ import annotations

import uuid
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.models import Job
from app.embeddings.spaces import SPACE_KINDS, latest_space
from app.errors import InvalidInput, NotFound
from app.images import blobs
from app.images.decode import Limits, Unreadable, decode, too_big

QUERIES = "queries"  # the store's folder for uploaded queries (each removed once its job is done)
MAX_K = 200


def space_of(session: Session, ref: int | None) -> Job:
    """The space to search: a succeeded train or embed job with embeddings (a predict job means its model's
    train job); None means the newest (spaces.latest_space)."""
    if ref is None:
        job = latest_space(session)
        if job is None:
            raise InvalidInput("no embeddings to search yet: train a model or run an embed job first")
        return job
    job = session.get(Job, ref)
    if job is not None and job.kind == "predict":
        job = session.get(Job, int((job.config or {}).get("model_job") or 0))
    if job is None:
        raise NotFound(f"no job {ref}")
    if job.kind not in SPACE_KINDS or job.status != "succeeded" or not (job.artifacts or {}).get("embeddings"):
        raise InvalidInput(f"job {ref} is not a succeeded train or embed job with embeddings")
    return job


def create_search(db, settings: Settings, *, filename: str, stream: BinaryIO, k: int = 20,
                  space: int | None = None) -> Job:
    """Queue a search for the `k` images nearest the uploaded one in `space` (default the newest).

    Takes the Database, not a session: the upload is checked and stored outside any write transaction."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise InvalidInput(f"k must be a whole number from 1 to {MAX_K}, not {k!r}")
    with db.reading() as session:
        target = space_of(session, space)
        target_id, snapshot_id = target.id, target.snapshot_id
    key, name = _store_query(settings, filename, stream)
    with db.writing() as session:
        job = Job(kind="search", snapshot_id=snapshot_id, status="queued", notes=[], artifacts={},
                  config={"space": target_id, "k": k, "query": key, "filename": name},
                  message="waiting for a worker")
        session.add(job)
        session.commit()
        session.expunge(job)
    return job


def _store_query(settings: Settings, filename: str, stream: BinaryIO) -> tuple[str, str]:
    """(store key, file name) of the upload, put under queries/ once it decodes within the import's limits."""
    data = stream.read(settings.max_file_bytes + 1)
    name = (filename or "upload").rsplit("/", 1)[-1][:200]
    try:
        if len(data) > settings.max_file_bytes:
            raise too_big(len(data), settings.max_file_bytes)
        decoded = decode(data, Limits(settings.max_pixels, settings.thumb_size, settings.preview_size))
    except Unreadable as exc:
        raise InvalidInput(f"cannot search with {name}: {exc}") from None
    key = f"{QUERIES}/{uuid.uuid4().hex}{decoded.ext}"
    settings.tmp_dir.mkdir(parents=True, exist_ok=True)
    temp = settings.tmp_dir / f"query-{uuid.uuid4().hex}.part"
    temp.write_bytes(data)
    try:
        blobs.for_settings(settings).put(temp, key)
    finally:
        temp.unlink(missing_ok=True)
    return key, name


def recent_spaces(session: Session, limit: int = 10) -> list[dict]:
    """The newest succeeded train and embed jobs with embeddings, for the search page's choice of space."""
    rows = session.scalars(select(Job).where(Job.kind.in_(SPACE_KINDS), Job.status == "succeeded")
                           .order_by(Job.id.desc()).limit(5 * limit))
    out = []
    for job in rows:
        art = job.artifacts or {}
        if art.get("embeddings") and len(out) < limit:
            what = art.get("backbone") or (job.config or {}).get("model") or job.kind
            out.append({"job": job.id, "kind": job.kind, "what": what, "images": art.get("embedded")})
    return out


def search_result(session: Session, job_id: int) -> dict:
    """{"job", "space", "status", "message", "error", "filename", "items"}: `items` (nearest first, each
    {"image", "distance", "class"}) once the job succeeded, else []."""
    job = session.get(Job, job_id)
    if job is None or job.kind != "search":
        raise NotFound(f"no search {job_id}")
    config = job.config or {}
    items = (job.metrics or {}).get("items", []) if job.status == "succeeded" else []
    return {"job": job.id, "space": config.get("space"), "status": job.status, "message": job.message,
            "error": job.error, "filename": config.get("filename"), "items": items}
