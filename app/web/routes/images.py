"""Images: upload, list, detail, files; the browse grid and the image page."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from app.embeddings import regions
from app.embeddings.similar import similar
from app.errors import LoupeError
from app.images import blobs, store
from app.images.catalog import get_image, image_meta, source_names
from app.images.ingest import import_uploads
from app.images.standing import open_flags, snapshots_of
from app.keyboard import CONFIDENCE_LEVELS
from app.labelling import exclusion
from app.labelling.bulk import actions_for_image, recent_actions
from app.labelling.events import current_label, history
from app.labelling.exclusion import exclusion_history
from app.labelling.imported import import_labelled_uploads
from app.labelling.queries import COUNT_CAP, ImageFilter, count_text, list_images
from app.labelling.suggestions import latest_prediction
from app.labelling.tags import active_tags
from app.taxonomy.queries import MULTI, taxonomy_mode
from app.taxonomy.service import active_classes
from app.training.jobs import predict_after_import
from app.web.deps import DatabaseDep, ReadSession, SettingsDep, WriteSession
from app.web.files import blob_response, save_upload, upload_dir
from app.web.forms import form_number
from app.web.identity import signed
from app.web.openapi import file_response
from app.web.params import Count, Id
from app.web.schemas.images import ExclusionEvent, ImageDetail, ImagePage, ImportReport, SimilarImages
from app.web.templating import render

router = APIRouter()
IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}
PAGE_SIZE = 120


@router.post("/api/images", tags=["images"], response_model=ImportReport)
def upload_images(
    db: DatabaseDep,
    settings: SettingsDep,
    files: Annotated[list[UploadFile], File(description="images or zip files")],
    source: Annotated[str, Form(description="where these images come from")],
    labels: Annotated[UploadFile | None, File(description="a label file for these images: Loupe's CSV / JSONL "
                                                          "manifest or another tool's export (its format is "
                                                          "recognised)")] = None,
    labels_format: Annotated[str, Form(description="'folders': each zipped file's class is its folder")] = "",
) -> dict:
    """Import uploaded images (a zip counts as the files inside it), with their labels when `labels` (a label
    file) or `labels_format=folders` is given: each label becomes an "import" label event, unknown classes are
    created in one taxonomy version, and a label that differs from an image's current one is reported, never
    written. Everything is checked before anything is imported. When a trained model exists, a predict job is
    queued for the new images (`predict_job`: its id, or null)."""
    uploads = [(f.filename or "upload", f.file) for f in files]
    if labels is None and not labels_format.strip():
        report, labelled = import_uploads(db, settings, uploads, source=source), None
    else:
        with upload_dir(settings) as folder:
            saved = save_upload(folder, labels) if labels is not None else None
            report, labelled = import_labelled_uploads(db, settings, uploads, source=source,
                                                       labels=labels_format.strip(), label_file=saved)
    return {**report.as_dict(), "predict_job": predict_after_import(db, len(report.imported)),
            "labels": asdict(labelled) if labelled is not None else None}


def image_filter(
    session: ReadSession,
    settings: SettingsDep,
    status: Annotated[str | None, Query(description="unlabelled | labelled | flagged | none-of-these (a "
                                                    "multi-label empty answer)")] = None,
    source: str | None = None,
    class_: Annotated[str | None, Query(alias="class", description="class name or id")] = None,
    tag: str | None = None,
    min_confidence: Annotated[str | None, Query(description="0..1")] = None,
    max_confidence: Annotated[str | None, Query(description="0..1")] = None,
    split: Annotated[str | None, Query(description="train | val | test in the latest snapshot, or none")] = None,
    analysis: Annotated[Id | None, Query(description="the analyse job a map region was drawn on")] = None,
    region: Annotated[str | None, Query(description="a polygon on that map: x1,y1,x2,y2,... (its images)")] = None,
    lacks: Annotated[str | None, Query(description="multi-label: labelled images whose set lacks this class "
                                                   "(`class` then means has it)")] = None,
    exactly: Annotated[str | None, Query(description="multi-label: labelled images whose set is exactly these "
                                                     "classes, comma-separated (status=none-of-these: the empty "
                                                     "set)")] = None,
) -> ImageFilter:
    """The shared filter query parameters of /api/images and /browse (an empty field means no filter)."""
    f = ImageFilter(status=status or None, source=source or None, class_ref=class_ or None, tag=tag or None,
                    min_confidence=_number("min_confidence", min_confidence),
                    max_confidence=_number("max_confidence", max_confidence), split=split or None,
                    analysis=analysis, region=region or None, lacks=lacks or None, exactly=exactly or None)
    return regions.resolve(session, settings, f)


def _number(name: str, value: str | None) -> float | None:
    return form_number(value, name, float, low=0, high=1)


FilterDep = Annotated[ImageFilter, Depends(image_filter)]


@router.get("/api/images", tags=["images"], response_model=ImagePage)
def read_images(
    session: ReadSession, f: FilterDep, limit: Count = 100, offset: Count = 0,
    after: Annotated[Count | None, Query(description="keyset cursor: images with a greater id (the "
                                         "previous page's `next`); as fast deep in the list as at its start")] = None,
) -> dict:
    """Images matching the filters, in import order, with their current labels; `next` is the next page's cursor.

    `total` is exact, so it counts every match (index-only, but a million matches take tens of ms).
    """
    page = list_images(session, f, limit=limit, offset=offset, after=after)
    return {"items": page.items, "total": page.total, "next": page.next_after}


@router.get("/api/images/{image_id}", tags=["images"], response_model=ImageDetail)
def read_image(session: ReadSession, image_id: Id) -> dict:
    """One image: metadata, current label, full label history (oldest first; each event's `kind`: manual,
    bulk, undo, review, ...), its exclusions (`exclusions`, oldest first) and the latest model's prediction
    (`prediction`: {"job", "class", "p", "top": [{"class", "p"}]} or null)."""
    meta = image_meta(get_image(session, image_id))
    hist = history(session, image_id)
    return {**meta, "label": current_label(hist), "history": hist,
            "prediction": latest_prediction(session, image_id),
            "exclusions": exclusion_history(session, image_id)}


def _file(session, settings, image_id: int, which: str) -> Response:
    image = get_image(session, image_id)
    if which == "file":
        return blob_response(blobs.for_settings(settings), image.stored_path, headers=IMMUTABLE,
                             filename=image.original_filename.rsplit("/", 1)[-1])
    key = store.thumb_key(image.sha256) if which == "thumb" else store.preview_key(image.sha256)
    return blob_response(blobs.for_settings(settings), key, headers=IMMUTABLE, small=True)


@router.get("/api/images/{image_id}/file", tags=["images"], **file_response("image/*"))
def read_image_file(session: ReadSession, settings: SettingsDep, image_id: Id) -> Response:
    """The original bytes, exactly as imported."""
    return _file(session, settings, image_id, "file")


@router.get("/api/images/{image_id}/thumb", tags=["images"], **file_response("image/jpeg"))
def read_image_thumb(session: ReadSession, settings: SettingsDep, image_id: Id) -> Response:
    """A small JPEG for grids."""
    return _file(session, settings, image_id, "thumb")


@router.get("/api/images/{image_id}/preview", tags=["images"], **file_response("image/jpeg"))
def read_image_preview(session: ReadSession, settings: SettingsDep, image_id: Id) -> Response:
    """A screen-sized JPEG, EXIF orientation applied, for the labelling page."""
    return _file(session, settings, image_id, "preview")


@router.get("/api/images/{image_id}/similar", tags=["images"], response_model=SimilarImages)
def read_similar(session: ReadSession, settings: SettingsDep, image_id: Id,
                 k: Annotated[int, Query(ge=1, le=200, description="how many neighbours")] = 20,
                 job: Annotated[Id | None, Query(description="a train job (or one of its predict jobs); default: "
                                                 "the latest whose embeddings cover the image")] = None) -> dict:
    """The k images nearest this one by cosine distance between model embeddings, nearest first, itself excluded:
    `{"job", "items": [{"image", "distance", "class"}]}` (`class`: the current label, or null). 404 when the
    image is unknown or no embeddings cover it yet."""
    return similar(session, settings, image_id, k=k, job=job)


@router.get("/browse", include_in_schema=False)
def browse_page(request: Request, session: ReadSession, f: FilterDep, page: Count = 1, after: Count | None = None,
                before: Count | None = None):
    """Thumbnail grid with filters and multi-select labelling; pages by keyset (`after` / `before` an id)."""
    offset = (max(page, 1) - 1) * PAGE_SIZE if after is None and before is None else 0  # `page`: old bookmarks
    # A map selection is counted exactly: the map said how many it holds, and its ids bound the count anyway.
    cap = None if f.members is not None else COUNT_CAP
    result = list_images(session, f, limit=PAGE_SIZE, offset=offset, after=after, before=before, count_cap=cap)
    # Keyset links carry the page number along; the first page is the one with nothing before it.
    page_no = max(page, 2) if result.prev_before is not None else 1
    pages = max(1, math.ceil(result.total / PAGE_SIZE))
    pages_text = f"{pages:,}" if result.exact else f"{max(page_no, math.ceil(COUNT_CAP / PAGE_SIZE)):,}+"
    return render(request, "pages/browse.html", {
        "items": result.items, "total": result.total, "total_text": count_text(result.total, exact=result.exact),
        "f": f, "filtered": not f.is_empty(), "page_no": page_no, "pages_text": pages_text,
        "recent": recent_actions(session, 5),
        "next_after": result.next_after, "prev_before": result.prev_before,
        "classes": active_classes(session), "tags": active_tags(session), "sources": source_names(session),
        "levels": CONFIDENCE_LEVELS, "multi": taxonomy_mode(session) == MULTI,
        "base_query": "".join(f"{urlencode({k: v})}&" for k, v in request.query_params.items()
                              if k not in ("page", "after", "before") and v),
    }, block="grid")


SIMILAR_ON_PAGE = 12


@router.get("/images/{image_id}", include_in_schema=False)
def image_page(request: Request, session: ReadSession, settings: SettingsDep, image_id: Id):
    """One image: metadata, label history (with kinds and bulk actions), exclusions, open flags, snapshots,
    and the images most like it (when a model's embeddings cover it)."""
    image = get_image(session, image_id)
    hist = history(session, image_id)
    try:
        near = similar(session, settings, image_id, k=SIMILAR_ON_PAGE)
    except LoupeError as exc:  # no embeddings yet (or their files are gone): the page says why, and still shows
        near = {"job": None, "items": [], "why": exc.detail}
    return render(request, "pages/image.html", {
        "image": image, "meta": image_meta(image), "history": hist, "label": current_label(hist),
        "classes": active_classes(session), "exclusions": exclusion_history(session, image_id),
        "bulk_of": actions_for_image(session, image_id), "flags": open_flags(session, image_id),
        "snapshots": snapshots_of(session, image_id), "prediction": latest_prediction(session, image_id),
        "similar": near,
    })


class ExclusionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("", description="why (required to exclude)")
    annotator: str = ""


@router.post("/api/images/{image_id}/exclude", status_code=201, tags=["images"], response_model=ExclusionEvent)
def exclude_image(request: Request, session: WriteSession, image_id: Id, body: ExclusionBody) -> dict:
    """Take the image out of the dataset (snapshots leave it out, queues skip it): an exclusion event with a
    reason; its open flags close themselves. 409 when it is excluded already."""
    event = exclusion.exclude(session, image_id, reason=body.reason, annotator=signed(request, body.annotator))
    return exclusion.event_view(event)


@router.post("/api/images/{image_id}/include", status_code=201, tags=["images"], response_model=ExclusionEvent)
def include_image(request: Request, session: WriteSession, image_id: Id, body: ExclusionBody) -> dict:
    """Put an excluded image back (an include event; the exclusion stays in its history). 409 when it is not
    excluded."""
    event = exclusion.include(session, image_id, reason=body.reason, annotator=signed(request, body.annotator))
    return exclusion.event_view(event)
