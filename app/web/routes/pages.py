"""The overview page."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.images.catalog import source_counts
from app.labelling.queries import queue_count, unlabelled_count
from app.taxonomy.service import taxonomy_view
from app.web.deps import ReadSession
from app.web.templating import render

router = APIRouter()


@router.get("/", include_in_schema=False)
def overview_page(request: Request, session: ReadSession):
    """Counts per source and class, and the drop zone for new images."""
    sources = source_counts(session)
    return render(request, "pages/overview.html", {
        "sources": sources,
        "total": sum(s["images"] for s in sources),
        "unlabelled": unlabelled_count(session),
        "rereview": queue_count(session, "rereview"),
        "taxonomy": taxonomy_view(session),
    })
