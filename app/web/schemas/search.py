"""What the search-by-image routes answer (app/web/routes/search.py): a queued search, and its state and
results."""

from __future__ import annotations

from pydantic import Field

from app.db.vocab import JobStatus
from app.web.schemas import Reply
from app.web.schemas.images import Neighbour


class SearchQueued(Reply):
    """A search waiting for a worker: poll GET /api/similar/{job} for its answer."""

    job: int = Field(description="the search job")
    space: int = Field(description="the train or embed job whose embeddings are searched")
    status: JobStatus


class SearchResult(Reply):
    """A search's state and, once it succeeded, the images most like the uploaded one."""

    job: int = Field(description="the search job")
    space: int | None = Field(description="the train or embed job whose embeddings are searched")
    status: JobStatus
    message: str = Field(description="what the job is doing or did, in words")
    error: str | None = Field(description="why it failed")
    filename: str | None = Field(description="the uploaded file's name")
    items: list[Neighbour] = Field(description="nearest first; empty until the search succeeded")
