"""Listing flags: images a person should look at again, whatever raised them."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.models import CurrentLabel, Flag, LabelClass
from app.errors import InvalidInput
from app.timeutil import iso

KINDS = ("mislabel", "duplicate", "audit", "rereview")
STATUSES = ("open", "resolved", "cancelled")


def list_flags(
    session: Session, *, status: str | None = "open", kind: str | None = None, limit: int = 100, offset: int = 0
) -> tuple[list[dict], int]:
    """Flags, highest score first (then oldest), with the image's current class as `given`."""
    if status and status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}, not '{status}'")
    if kind and kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}, not '{kind}'")
    if not 1 <= limit <= 1000 or offset < 0:
        raise InvalidInput("limit must be from 1 to 1000 and offset 0 or more")
    q = select(Flag)
    if status:
        q = q.where(Flag.status == status)
    if kind:
        q = q.where(Flag.kind == kind)
    total = session.scalar(select(func.count()).select_from(q.subquery()))
    given = (
        select(LabelClass.name).join(CurrentLabel, CurrentLabel.class_id == LabelClass.id)
        .where(CurrentLabel.image_id == Flag.image_id).scalar_subquery()
    )
    suggested = select(LabelClass.name).where(LabelClass.id == Flag.suggested_class_id).scalar_subquery()
    rows = session.execute(
        q.add_columns(given, suggested).order_by(Flag.score.desc().nulls_last(), Flag.id).limit(limit).offset(offset)
    ).all()
    return [flag_view(f, g, s) for f, g, s in rows], total


def flag_view(flag: Flag, given: str | None, suggested: str | None) -> dict:
    return {
        "id": flag.id,
        "image": flag.image_id,
        "kind": flag.kind,
        "score": flag.score,
        "given": given,
        "suggested": suggested,
        "status": flag.status,
        "details": flag.details,
        "created_at": iso(flag.created_at),
        "resolution": flag.resolution,
    }
