"""The map: GET /api/embeddings/map and the /map page (a canvas of every analysed image)."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from app.embeddings.maps import NEWER_CAP, NO_MAP, as_columns, as_items, map_analysis, map_data, newer_images
from app.errors import NotFound
from app.web.deps import ReadSession, SettingsDep
from app.web.params import Id
from app.web.templating import render

router = APIRouter()


@router.get("/api/embeddings/map", tags=["embeddings"], response_class=Response,
            responses={200: {"content": {"application/json": {}}, "description": "the map's points"}})
def read_map(session: ReadSession, settings: SettingsDep,
             job: Annotated[Id | None, Query(description="an analyse job; default: the newest succeeded one")] = None,
             format: Annotated[Literal["items", "columns"], Query(
                 description="items: one object per image; columns: one list per field (what /map reads)")] = "items",
             ) -> Response:
    """Every image of an analysis as a point on the 2-D map: `{"job", "space", "snapshot", "items": [{"image",
    "x", "y", "class", "source", "split", "flagged", "unlabelled", "excluded"}]}`, x and y in [-1, 1]. `class`
    is the current label (null: none), `split` the image's split in the latest snapshot (null: not in it),
    `flagged` an open flag of any kind. `format=columns` gives one list per field instead, with `class`,
    `source` and `split` as indexes into `classes`, `sources` and `splits` (-1: none). 404 when there is no
    analysis yet, 422 when `job` is not an analyse job."""
    data = map_data(session, settings, job)
    body = as_columns(data) if format == "columns" else as_items(data)
    # Serialised here: FastAPI's encoder walks every value of 100,000 items one by one (seconds, not ms).
    return Response(json.dumps(body, separators=(",", ":"), allow_nan=False), media_type="application/json")


@router.get("/map", include_in_schema=False)
def map_page(request: Request, session: ReadSession, settings: SettingsDep, job: Id | None = None):
    """Every image as a point, coloured by class; box or lasso select opens the selection in Browse."""
    try:
        analysis = map_analysis(session, settings, job)
    except NotFound as exc:
        return render(request, "pages/map.html", {"analysis": None, "why": exc.detail if job else NO_MAP})
    newer = newer_images(session, analysis)
    return render(request, "pages/map.html", {"analysis": analysis, "newer": newer, "newer_cap": NEWER_CAP})
