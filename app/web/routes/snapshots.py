"""Snapshots: create, list, items, health report, diff, export; the snapshots and health pages."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from app.errors import InvalidInput, LoupeError, NotFound
from app.formats import WRITERS
from app.images.catalog import library_counts, source_names
from app.labelling.tags import active_tags
from app.quality import results
from app.snapshots import stored
from app.snapshots.export import SET_FORMATS, export_zip, manifest_text
from app.snapshots.freeze import create_snapshot
from app.snapshots.queries import ITEMS_PAGE, describe, get_snapshot, list_snapshots, snapshot_items
from app.snapshots.reports import LIMIT, live_health
from app.taxonomy.service import active_classes
from app.web.deps import ReadSession, SettingsDep, WriteSession
from app.web.forms import form_number, refusal_shows
from app.web.openapi import file_response
from app.web.params import Count, Id
from app.web.schemas.snapshots import (
    CreatedSnapshot,
    LiveHealth,
    ReportQueued,
    SnapshotDetail,
    SnapshotDiff,
    SnapshotDiffPending,
    SnapshotHealth,
    SnapshotHealthPending,
    SnapshotItems,
    SnapshotList,
)
from app.web.templating import render

router = APIRouter()


class SnapshotFilterBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sources: list[str] = Field([], description="source names; empty: all")
    classes: list[str | Id] = Field([], description="class names or ids; empty: all active classes")
    min_confidence: float | None = Field(None, description="0..1")
    exclude_tags: list[str] = []
    exclude_flagged: bool = Field(False, description="leave out images with an open flag")
    exclude_ambiguous: bool = Field(False, description="leave out images a reviewer marked ambiguous")
    exclude_excluded: bool = Field(True, description="leave out images excluded from the dataset")
    labelled_before: str | None = Field(None, description="ISO 8601 date or time: current label made before it")


class SplitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    val: float = 0.2
    test: float = 0.0
    seed: int = 0
    folds: int = Field(5, description="folds over all images, for out-of-sample predictions")


class SnapshotBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    filter: SnapshotFilterBody = SnapshotFilterBody()
    split: SplitBody = SplitBody()


@router.post("/api/snapshots", status_code=201, tags=["snapshots"], response_model=CreatedSnapshot,
             response_model_exclude_unset=True)
def create_snapshot_api(session: WriteSession, settings: SettingsDep, body: SnapshotBody) -> dict:
    """Freeze the images whose current labels pass the filter, with splits and folds stable across snapshots
    (from each image's hash and the seed; near-duplicates together); says how many images wait in re-review.
    Past `quality_live_max` images, queues the report jobs that compute its health and its diff with the
    snapshot before it once (`queued`: their ids)."""
    snapshot = create_snapshot(session, name=body.name, filter=body.filter.model_dump(), split=body.split.model_dump())
    queued = stored.after_freeze(session, settings, snapshot)
    return {**describe(session, snapshot), **({"queued": [j.id for j in queued]} if queued else {})}


@router.get("/api/snapshots", tags=["snapshots"], response_model=SnapshotList)
def read_snapshots(session: ReadSession) -> dict:
    """Every snapshot, newest first."""
    return {"items": list_snapshots(session)}


@router.get("/api/snapshots/live/health", tags=["snapshots"], response_model=LiveHealth,
            response_model_exclude_unset=True)
def read_live_health(session: ReadSession, settings: SettingsDep) -> dict:
    """The health report of today's labels (what a snapshot with the default filter would hold). Past
    `quality_live_max` images, the newest stored report (with `as_of`: its job, time and the changes since);
    computed here when none is stored yet."""
    shown = results.view(session, settings, parts=("health",))
    if shown["health"] is None:
        return live_health(session)
    return {**shown["health"], **({"as_of": shown["as_of"]} if shown["as_of"] else {})}


@router.get("/api/snapshots/{snapshot_id}", tags=["snapshots"], response_model=SnapshotDetail)
def read_snapshot(session: ReadSession, snapshot_id: Id) -> dict:
    """One snapshot: name, hash, taxonomy version, filter, split settings and split sizes."""
    return describe(session, get_snapshot(session, snapshot_id))


@router.get("/api/snapshots/{snapshot_id}/items", tags=["snapshots"], response_model=SnapshotItems)
def read_snapshot_items(
    session: ReadSession, snapshot_id: Id, limit: Count = ITEMS_PAGE, offset: Count = 0,
    after: Annotated[Count | None, Query(description="keyset cursor: items with a greater image id (the previous "
                                         "page's `next`); as fast deep in the snapshot as at its start")] = None,
) -> dict:
    """The snapshot's images in image id order with their frozen class, split, fold and label event, a page at a
    time (`limit` up to 50,000); `total` is the snapshot's size, `next` the next page's cursor (null on the last)."""
    snapshot = get_snapshot(session, snapshot_id)
    items, following = snapshot_items(session, snapshot, limit=limit, offset=offset, after=after)
    return {"items": items, "total": snapshot.count, "next": following}


PENDING = "not computed yet: `pending` names the report job under way (null: none; POST to queue one)"


@router.get("/api/snapshots/{snapshot_id}/health", tags=["snapshots"], response_model=SnapshotHealth,
            response_model_exclude_unset=True,
            responses={202: {"model": SnapshotHealthPending, "description": PENDING}})
def read_snapshot_health(session: ReadSession, settings: SettingsDep, snapshot_id: Id) -> dict:
    """The snapshot's health report: balance, confidence, sources, hard cases, effective size, warnings. Past
    `quality_live_max` images it is computed once by a report job and read back, with `as_of` ({"job", "at",
    "flags_since": flag changes on its images since, "refreshing", "failed"}: flags are today's, the rest is
    frozen); until then HTTP 202 with `pending`."""
    snapshot = get_snapshot(session, snapshot_id)
    shown = stored.health_view(session, settings, snapshot)
    if shown["health"] is None:
        as_of = shown["as_of"]
        return JSONResponse({"pending": as_of["refreshing"], "as_of": as_of, "message": (
            f"being computed (report job #{as_of['refreshing']})" if as_of["refreshing"] else
            f"not computed yet: POST /api/snapshots/{snapshot.id}/health/refresh")}, status_code=202)
    return {**shown["health"], **({"as_of": shown["as_of"]} if shown["as_of"] else {})}


@router.post("/api/snapshots/{snapshot_id}/health/refresh", status_code=202, tags=["snapshots"],
             response_model=ReportQueued)
def refresh_snapshot_health(session: WriteSession, settings: SettingsDep, snapshot_id: Id) -> dict:
    """Queue a report job that computes the snapshot's health again (its flags change; the rest is frozen), or
    return the one queued. Only past `quality_live_max` images: smaller ones are computed on every view."""
    snapshot = get_snapshot(session, snapshot_id)
    if not stored.big(settings, snapshot):
        raise InvalidInput(f"snapshot #{snapshot.id} has {snapshot.count:,} images: its health is computed on "
                           f"every view (up to {settings.quality_live_max:,})")
    job = stored.queue_health(session, snapshot)
    return {"job": job.id, "status": job.status}


@router.get("/api/snapshots/{snapshot_id}/diff/{other_id}", tags=["snapshots"], response_model=SnapshotDiff,
            response_model_exclude_unset=True,
            responses={202: {"model": SnapshotDiffPending, "description": PENDING}})
def read_snapshot_diff(session: ReadSession, settings: SettingsDep, snapshot_id: Id, other_id: Id,
                       limit: int = LIMIT, offset: int = 0) -> dict:
    """What changed from this snapshot to the other: exact `counts` of images added, removed, relabelled and
    moved, and the lists from `offset`, at most `limit` (default 1,000, up to 100,000) each, in image id order.
    Past `quality_live_max` images (both together) a report job computes it once (`job`); until then HTTP 202
    with `pending` (POST here queues it)."""
    old, new = get_snapshot(session, snapshot_id), get_snapshot(session, other_id)
    shown = stored.diff_state(session, settings, old, new, limit=limit, offset=offset)
    if shown["diff"] is None:
        return JSONResponse({"pending": shown["refreshing"], "failed": shown["failed"], "message": (
            f"being computed (report job #{shown['refreshing']})" if shown["refreshing"] else
            f"not computed yet: POST /api/snapshots/{old.id}/diff/{new.id}")}, status_code=202)
    return shown["diff"]


@router.post("/api/snapshots/{snapshot_id}/diff/{other_id}", status_code=202, tags=["snapshots"],
             response_model=ReportQueued)
def queue_snapshot_diff(session: WriteSession, settings: SettingsDep, snapshot_id: Id, other_id: Id) -> dict:
    """Queue the report job that computes this diff once (either direction), or return the one queued. Only
    past `quality_live_max` images: smaller diffs are computed on every view."""
    old, new = get_snapshot(session, snapshot_id), get_snapshot(session, other_id)
    if not stored.big(settings, old, new):
        raise InvalidInput(f"these snapshots hold {old.count + new.count:,} images together: their diff is "
                           f"computed on every view (up to {settings.quality_live_max:,})")
    job = stored.queue_diff(session, old, new)
    return {"job": job.id, "status": job.status}


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "snapshot"


# How the snapshot page names each export; a writer missing here is shown by its format name.
EXPORT_TITLES = {"imagefolder": "ImageFolder", "csv": "CSV manifest", "jsonl": "JSONL manifest",
                 "hf": "Hugging Face datasets", "label-studio": "Label Studio", "cvat": "CVAT 1.1 XML",
                 "fiftyone": "FiftyOne"}
MANIFESTS = {"csv": "text/csv", "jsonl": "application/x-ndjson"}  # answered as one text file; the rest as a zip


def export_choices() -> list[tuple[str, str]]:
    return [(name, EXPORT_TITLES.get(name, name)) for name in WRITERS]


@router.get("/api/snapshots/{snapshot_id}/export", tags=["snapshots"],
            **file_response("text/csv", "application/x-ndjson", "application/zip"))
def export_snapshot_api(session: ReadSession, settings: SettingsDep, snapshot_id: Id, format: str = "csv"):
    """Download the manifest alone (csv | jsonl), or the images with their label files as a zip in any export
    format (imagefolder, and the other tools' formats `loupe export --format` lists); every zip carries
    loupe-export.json (snapshot hash, taxonomy version, the fields the format drops)."""
    snapshot = get_snapshot(session, snapshot_id)
    if format in MANIFESTS:
        return Response(manifest_text(session, snapshot, format), media_type=f"{MANIFESTS[format]}; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{_slug(snapshot.name)}.{format}"'})
    if format not in WRITERS:
        raise InvalidInput(f"format must be one of {', '.join(WRITERS)}, not '{format}'")
    fd, tmp = tempfile.mkstemp(prefix="export-", suffix=".zip", dir=settings.tmp_dir)
    os.close(fd)
    try:
        export_zip(session, settings, snapshot, Path(tmp), format)
    except BaseException:
        os.unlink(tmp)
        raise
    suffix = "" if format == "imagefolder" else f"-{format}"
    return FileResponse(tmp, media_type="application/zip", filename=f"{_slug(snapshot.name)}{suffix}.zip",
                        background=BackgroundTask(os.unlink, tmp))


def _form_context(session, *, error: str | None = None, values: dict | None = None) -> dict:
    return {"snapshots": list_snapshots(session), "sources": source_names(session),
            "classes": active_classes(session), "tags": active_tags(session), "error": error, "values": values or {}}


def _number(form, key: str, cast, default):
    return form_number(form.get(key), key.replace("_", " "), cast, default)


@router.get("/snapshots", include_in_schema=False)
def snapshots_page(request: Request, session: ReadSession):
    """Snapshots, and the form that freezes a new one."""
    return render(request, "pages/snapshots.html", _form_context(session))


@router.post("/snapshots", include_in_schema=False)
async def create_snapshot_page(request: Request, session: WriteSession, settings: SettingsDep):
    """The create form: freeze and go to the new snapshot, or show the form again with the problem."""
    form = await request.form()
    values = {k: form.getlist(k) if k in ("sources", "classes", "exclude_tags") else form.get(k) for k in form}
    def refused(exc: LoupeError):
        return render(request, "pages/snapshots.html", _form_context(session, error=exc.detail, values=values),
                      status_code=exc.status_code)

    with refusal_shows(session, refused):
        snapshot = create_snapshot(session, name=form.get("name") or "", filter={
            "sources": form.getlist("sources"), "classes": form.getlist("classes"),
            "min_confidence": _number(form, "min_confidence", float, None),
            "exclude_tags": form.getlist("exclude_tags"),
            "exclude_flagged": "exclude_flagged" in form, "exclude_ambiguous": "exclude_ambiguous" in form,
            "exclude_excluded": "exclude_excluded" in form, "labelled_before": form.get("labelled_before") or None,
        }, split={"val": _number(form, "val", float, 0.2), "test": _number(form, "test", float, 0.0),
                  "seed": _number(form, "seed", int, 0), "folds": _number(form, "folds", int, 5)})
    stored.after_freeze(session, settings, snapshot)
    return RedirectResponse(f"/snapshots/{snapshot.id}", status_code=303)


@router.get("/snapshots/live", include_in_schema=False)
def live_health_page(request: Request, session: ReadSession, settings: SettingsDep):
    """The health report of the live dataset (stored past `quality_live_max` images, with its as-of line)."""
    shown = results.view(session, settings, parts=("health",))
    return render(request, "pages/health.html", {"h": shown["health"], "as_of": shown["as_of"],
                                                 "images": library_counts(session)["images"]})


PAGE_LIST = 50  # entries of each diff list the page shows (the counts are whole; the JSON API pages on)


@router.get("/snapshots/{snapshot_id}", include_in_schema=False)
def snapshot_page(request: Request, session: ReadSession, settings: SettingsDep, snapshot_id: Id,
                  diff_with: Id | None = None):
    """One snapshot: its settings, health report, downloads and a diff with another snapshot. Past
    `quality_live_max` images the health and the diff are stored results (app.snapshots.stored)."""
    snapshot = get_snapshot(session, snapshot_id)
    compare = None
    if diff_with:
        compare = stored.diff_state(session, settings, get_snapshot(session, diff_with), snapshot, limit=PAGE_LIST,
                                    offset=0)
    view = describe(session, snapshot)
    multi = view["mode"] == "multi-label"
    others = [x for x in list_snapshots(session) if x["id"] != snapshot.id and x["mode"] == view["mode"]]
    context = {"s": view, "others": others,
               "diff": compare["diff"] if compare else None, "compare": compare, "diff_with": diff_with,
               "exports": [e for e in export_choices() if not multi or e[0] in SET_FORMATS]}
    if request.headers.get("HX-Request") != "true":  # a compare answers with the diff block alone
        shown = stored.health_view(session, settings, snapshot)
        context |= {"h": shown["health"], "as_of": shown["as_of"]}
    return render(request, "pages/snapshot.html", context, block="diff")


@router.post("/snapshots/{snapshot_id}/actions/{action}", include_in_schema=False)
async def snapshot_action(request: Request, session: WriteSession, settings: SettingsDep, snapshot_id: Id,
                          action: str):
    """The page's buttons: queue the health report again ("refresh"), or the diff with `diff_with` ("diff")."""
    snapshot = get_snapshot(session, snapshot_id)
    if action == "refresh":
        if stored.big(settings, snapshot):
            stored.queue_health(session, snapshot)
        return RedirectResponse(f"/snapshots/{snapshot.id}", status_code=303)
    if action == "diff":
        other = get_snapshot(session, (await request.form()).get("diff_with") or "")
        if stored.big(settings, other, snapshot):
            stored.queue_diff(session, other, snapshot)
        return RedirectResponse(f"/snapshots/{snapshot.id}?diff_with={other.id}", status_code=303)
    raise NotFound(f"no action '{action}' on a snapshot")
