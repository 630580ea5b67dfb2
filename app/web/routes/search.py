"""Search by an uploaded image: queue the query, read its answer; the search page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile

from app.embeddings.search import MAX_K, create_search, recent_spaces, search_result
from app.taxonomy.service import active_classes
from app.web.deps import DatabaseDep, ReadSession, SettingsDep
from app.web.params import Id
from app.web.schemas.search import SearchQueued, SearchResult
from app.web.templating import render

router = APIRouter()


@router.post("/api/similar", status_code=202, tags=["images"], response_model=SearchQueued)
def create_similar_search(
    db: DatabaseDep, settings: SettingsDep,
    file: Annotated[UploadFile, File(description="the image to search for (not imported into the dataset)")],
    k: Annotated[int, Form(ge=1, le=MAX_K, description="how many neighbours")] = 20,
    job: Annotated[Id | None, Form(description="the space: a train or embed job (default: the newest)")] = None,
) -> SearchQueued:
    """Queue a search for the images most like an uploaded one; a worker embeds it with the space's model.
    Poll `GET /api/similar/{job}` for the answer. 422 when the file is not a readable image or there is no
    space to search; 404 for an unknown job."""
    queued = create_search(db, settings, filename=file.filename or "upload", stream=file.file, k=k, space=job)
    return SearchQueued(job=queued.id, space=queued.config["space"], status=queued.status)


@router.get("/api/similar/{job_id}", tags=["images"], response_model=SearchResult)
def read_similar_search(session: ReadSession, job_id: Id) -> SearchResult:
    """A search's state and, once it succeeded, `items`: [{"image", "distance", "class"}], nearest first
    (`class`: the current label, or null)."""
    return SearchResult(**search_result(session, job_id))


@router.get("/similar", include_in_schema=False)
def similar_page(request: Request, session: ReadSession, search: Id | None = None):
    """Upload an image, see the dataset's images most like it; `search`: a search's results (the htmx block
    `results` polls itself until the worker has answered)."""
    found = search_result(session, search) if search is not None else None
    classes = active_classes(session) if found and found["items"] else []
    return render(request, "pages/similar.html", {"spaces": recent_spaces(session), "max_k": MAX_K,
                                                  "search": found, "classes": classes}, block="results")
