"""The map: GET /api/embeddings/map and the /map page (a canvas of every analysed image)."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from app.embeddings.maps import (
    NEWER_CAP,
    NO_MAP,
    SINCE_CAP,
    as_binary,
    as_columns,
    as_items,
    as_of,
    map_analysis,
    map_data,
)
from app.errors import NotFound
from app.web.deps import ReadSession, SettingsDep
from app.web.params import Id
from app.web.schemas.maps import MapColumns, MapItems
from app.web.templating import render

router = APIRouter()


# The route answers a Response it serialised itself, so FastAPI neither validates nor documents a body on its own:
# `model` under `responses` names the JSON shapes for the schema (format=items or columns), and binary stays bytes.
@router.get("/api/embeddings/map", tags=["embeddings"], response_class=Response,
            responses={200: {"model": MapItems | MapColumns, "description": "the map's points",
                             "content": {"application/json": {},
                                         "application/octet-stream": {"schema": {"type": "string",
                                                                                 "format": "binary"}}}}})
def read_map(session: ReadSession, settings: SettingsDep,
             job: Annotated[Id | None, Query(description="an analyse job; default: the newest succeeded one")] = None,
             format: Annotated[Literal["items", "columns", "binary"], Query(
                 description="items: one object per image; columns: one list per field; binary: the columns as "
                             "typed arrays after a JSON header (what /map reads)")] = "items",
             ) -> Response:
    """Every image of an analysis as a point on the 2-D map: `{"job", "space", "snapshot", "items": [{"image",
    "x", "y", "class", "source", "split", "flagged", "unlabelled", "excluded"}]}`, x and y in [-1, 1]. `class`
    is the current label (null: none), `split` the image's split in the latest snapshot (null: not in it),
    `flagged` an open flag of any kind. `format=columns` gives one list per field instead, with `class`,
    `source` and `split` as indexes into `classes`, `sources` and `splits` (-1: none). 404 when there is no
    analysis yet, 422 when `job` is not an analyse job.

    `as_of` says how old the points are: {"job", "space", "at" (when the analysis read the labels), "extends",
    "placed_at", "since": {"labels", "exclusions", "images"} (made since "at"; images: imported since and not on
    the map), "refreshing" (an analyse job queued or running), "colours": "current"}. The points and the outlier
    scores are as of "at"; class, marks and split are always current. `format=binary`: a 4-byte little-endian
    header length, a JSON header (job, space, snapshot, as_of, classes, sources, splits, scale, n, marks,
    columns: [{"name", "dtype", "offset"}]) and the columns (image int32, x and y int16 in units of 1 / scale,
    class and source int16 indexes, split int8, marks uint8 bits), 14 bytes a point."""
    data = map_data(session, settings, job)
    when = as_of(session, map_analysis(session, settings, data.job))
    if format == "binary":
        return Response(as_binary(data, when), media_type="application/octet-stream")
    body = as_columns(data, when) if format == "columns" else as_items(data, when)
    # Serialised here: FastAPI's encoder walks every value of 100,000 items one by one (seconds, not ms).
    return Response(json.dumps(body, separators=(",", ":"), allow_nan=False), media_type="application/json")


@router.get("/map", include_in_schema=False)
def map_page(request: Request, session: ReadSession, settings: SettingsDep, job: Id | None = None):
    """Every image as a point, coloured by class; box or lasso select opens the selection in Browse."""
    try:
        analysis = map_analysis(session, settings, job)
    except NotFound as exc:
        return render(request, "pages/map.html", {"analysis": None, "why": exc.detail if job else NO_MAP})
    when = as_of(session, analysis)
    return render(request, "pages/map.html", {"analysis": analysis, "as_of": when, "newer": when["since"]["images"],
                                              "newer_cap": NEWER_CAP, "since_cap": SINCE_CAP})
