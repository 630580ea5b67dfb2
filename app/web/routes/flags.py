"""Flags as JSON (the review page arrives with the label-quality work)."""

from __future__ import annotations

from fastapi import APIRouter

from app.quality.flags import list_flags
from app.web.deps import ReadSession

router = APIRouter()


@router.get("/api/flags", tags=["flags"])
def read_flags(
    session: ReadSession, status: str | None = "open", kind: str | None = None, limit: int = 100, offset: int = 0
) -> dict:
    """Flags, highest score first: `given` is the image's current class, `suggested` the proposed one."""
    items, total = list_flags(session, status=status or None, kind=kind or None, limit=limit, offset=offset)
    return {"items": items, "total": total}
