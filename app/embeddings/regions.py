"""A region of the map (a box or a lasso drawn on /map) and the images inside it.

The map sends its selection as a polygon in map coordinates, not as image ids:
`?analysis=J&region=x1,y1,x2,y2,...`, at most 200 vertices (about 3.6 kB)
however many points it holds. The server recomputes membership from the
analysis' stored `xy`, rounded as GET /api/embeddings/map sends it
(app.embeddings.maps.rounded_xy), with the same even-odd test the page runs,
so the page's count and Browse's agree. A 400-vertex lasso around 58,000 of
100,000 points filters Browse in 0.2-0.45 CPU s.
"""

from __future__ import annotations

import math

import numpy as np
from sqlalchemy.orm import Session

from app.config import Settings
from app.embeddings.maps import map_analysis, rounded_xy
from app.errors import InvalidInput

MAX_VERTICES = 2_000  # the page simplifies a lasso to a few hundred; more is not a drawing


def parse(text: str) -> np.ndarray:
    """float64 (m, 2) vertices from "x1,y1,x2,y2,..." (at least 3 vertices, finite numbers)."""
    parts = [p for p in (text or "").split(",") if p.strip()]
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise InvalidInput("region must be a comma-separated list of numbers: x1,y1,x2,y2,...") from None
    if len(numbers) % 2 or not 3 <= len(numbers) // 2 <= MAX_VERTICES:
        raise InvalidInput(f"region must be a polygon of 3 to {MAX_VERTICES:,} points given as x,y pairs")
    if not all(math.isfinite(v) for v in numbers):
        raise InvalidInput("region coordinates must be finite numbers")
    return np.array(numbers, dtype=np.float64).reshape(-1, 2)


def inside(xy: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """bool (n,): which points of `xy` (n, 2) lie inside `polygon` (m, 2), by the even-odd rule.

    Concave and self-crossing lassos work (a loop crossed twice counts as outside, as a canvas fills it);
    a point exactly on an edge may fall either way. Same arithmetic, in the same order, as static/js/map.js.
    """
    xy = np.asarray(xy, dtype=np.float64)
    out = np.zeros(len(xy), dtype=bool)
    if len(xy) == 0:
        return out
    lo, hi = polygon.min(axis=0), polygon.max(axis=0)
    near = np.flatnonzero((xy[:, 0] >= lo[0]) & (xy[:, 0] <= hi[0]) & (xy[:, 1] >= lo[1]) & (xy[:, 1] <= hi[1]))
    px, py = xy[near, 0], xy[near, 1]
    hit = np.zeros(len(near), dtype=bool)
    xj, yj = polygon[-1]
    for xi, yi in polygon:
        crosses = (yi > py) != (yj > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = (xj - xi) * (py - yi) / (yj - yi) + xi
        hit ^= crosses & (px < at)
        xj, yj = xi, yi
    out[near] = hit
    return out


def members(session: Session, settings: Settings, *, analysis: int | None, region: str) -> list[int]:
    """Sorted ids of the images of `analysis` (default the newest) whose map point lies inside `region`."""
    polygon = parse(region)
    found = map_analysis(session, settings, analysis)
    ids = np.asarray(found.ids)
    return ids[inside(rounded_xy(found), polygon)].tolist()


def resolve(session: Session, settings: Settings, f):
    """An ImageFilter (app.labelling.queries) with its region's `members` filled in; unchanged without a region."""
    if f.region is None or f.members is not None:
        if f.analysis is not None and f.region is None:
            raise InvalidInput("analysis is given without a region: draw a box or lasso on the map")
        return f
    f.members = members(session, settings, analysis=f.analysis, region=f.region)
    return f
