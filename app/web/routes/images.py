"""Images: upload, list, detail, files; the browse grid and the image page."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse

from app.errors import InvalidInput
from app.images import store
from app.images.catalog import get_image, image_meta, source_names
from app.images.ingest import import_uploads
from app.labelling.events import current_label, history
from app.labelling.keys import CONFIDENCE_LEVELS
from app.labelling.queries import ImageFilter, list_images
from app.labelling.tags import active_tags
from app.taxonomy.service import active_classes
from app.web.deps import DatabaseDep, ReadSession, SettingsDep
from app.web.templating import render

router = APIRouter()
IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}
PAGE_SIZE = 120


@router.post("/api/images", tags=["images"])
def upload_images(
    db: DatabaseDep,
    settings: SettingsDep,
    files: Annotated[list[UploadFile], File(description="images or zip files")],
    source: Annotated[str, Form(description="where these images come from")],
) -> dict:
    """Import uploaded images (a zip counts as the files inside it)."""
    report = import_uploads(db, settings, [(f.filename or "upload", f.file) for f in files], source=source)
    return report.as_dict()


def image_filter(
    status: Annotated[str | None, Query(description="unlabelled | labelled")] = None,
    source: str | None = None,
    class_: Annotated[str | None, Query(alias="class", description="class name or id")] = None,
    tag: str | None = None,
    min_confidence: Annotated[str | None, Query(description="0..1")] = None,
    max_confidence: Annotated[str | None, Query(description="0..1")] = None,
) -> ImageFilter:
    """The shared filter query parameters of /api/images and /browse (an empty field means no filter)."""
    return ImageFilter(status=status or None, source=source or None, class_ref=class_ or None, tag=tag or None,
                       min_confidence=_number("min_confidence", min_confidence),
                       max_confidence=_number("max_confidence", max_confidence))


def _number(name: str, value: str | None) -> float | None:
    if value is None or not value.strip():
        return None
    try:
        return float(value)
    except ValueError:
        raise InvalidInput(f"{name} must be a number from 0 to 1, not '{value}'") from None


FilterDep = Annotated[ImageFilter, Depends(image_filter)]


@router.get("/api/images", tags=["images"])
def read_images(session: ReadSession, f: FilterDep, limit: int = 100, offset: int = 0) -> dict:
    """Images matching the filters, in import order, with their current labels."""
    items, total = list_images(session, f, limit=limit, offset=offset)
    return {"items": items, "total": total}


@router.get("/api/images/{image_id}", tags=["images"])
def read_image(session: ReadSession, image_id: int) -> dict:
    """One image: metadata, current label and full label history (oldest first)."""
    meta = image_meta(get_image(session, image_id))
    hist = history(session, image_id)
    return {**meta, "label": current_label(hist), "history": hist}


def _file(session, settings, image_id: int, which: str) -> FileResponse:
    image = get_image(session, image_id)
    if which == "file":
        return FileResponse(store.original_path(settings, image), headers=IMMUTABLE,
                            filename=image.original_filename.rsplit("/", 1)[-1], content_disposition_type="inline")
    path = store.thumb_path(settings, image.sha256) if which == "thumb" else store.preview_path(settings, image.sha256)
    return FileResponse(path, media_type="image/jpeg", headers=IMMUTABLE)


@router.get("/api/images/{image_id}/file", tags=["images"])
def read_image_file(session: ReadSession, settings: SettingsDep, image_id: int) -> FileResponse:
    """The original bytes, exactly as imported."""
    return _file(session, settings, image_id, "file")


@router.get("/api/images/{image_id}/thumb", tags=["images"])
def read_image_thumb(session: ReadSession, settings: SettingsDep, image_id: int) -> FileResponse:
    """A small JPEG for grids."""
    return _file(session, settings, image_id, "thumb")


@router.get("/api/images/{image_id}/preview", tags=["images"])
def read_image_preview(session: ReadSession, settings: SettingsDep, image_id: int) -> FileResponse:
    """A screen-sized JPEG, EXIF orientation applied, for the labelling page."""
    return _file(session, settings, image_id, "preview")


@router.get("/browse", include_in_schema=False)
def browse_page(request: Request, session: ReadSession, f: FilterDep, page: int = 1):
    """Thumbnail grid with filters and multi-select labelling."""
    page = max(page, 1)
    items, total = list_images(session, f, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE)
    return render(request, "pages/browse.html", {
        "items": items, "total": total, "f": f, "page": page, "pages": max(1, -(-total // PAGE_SIZE)),
        "classes": active_classes(session), "tags": active_tags(session), "sources": source_names(session),
        "levels": CONFIDENCE_LEVELS,
        "base_query": "".join(f"{urlencode({k: v})}&" for k, v in request.query_params.items() if k != "page" and v),
    }, block="grid")


@router.get("/images/{image_id}", include_in_schema=False)
def image_page(request: Request, session: ReadSession, image_id: int):
    """One image with its metadata and label history."""
    image = get_image(session, image_id)
    hist = history(session, image_id)
    return render(request, "pages/image.html", {
        "image": image, "meta": image_meta(image), "history": hist, "label": current_label(hist),
        "classes": active_classes(session),
    })
