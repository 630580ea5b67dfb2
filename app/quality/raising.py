"""How quality results become flags: one open flag per image and kind, a kept label respected.

A new result only raises the score of an open flag when it disagrees more
strongly, and a label a reviewer kept (or marked ambiguous) is flagged again
only when a newer score is worse than the score it was kept at, and only while
that label is still the current one. Mislabel and duplicate flags both follow
this rule (app.quality.mislabel_flags, app.quality.duplicate_flags).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import flagstate
from app.db.models import CurrentLabel, Flag, Image

KEPT = ("keep", "ambiguous")


def current_state(session: Session, image_ids) -> dict[int, tuple[int, int | None, bool]]:
    """image id -> (current event id, current class id, excluded)."""
    out = {}
    ids = [int(i) for i in image_ids]
    for start in range(0, len(ids), 5000):
        chunk = ids[start:start + 5000]
        rows = session.execute(
            select(Image.id, CurrentLabel.event_id, CurrentLabel.class_id, Image.excluded)
            .outerjoin(CurrentLabel, CurrentLabel.image_id == Image.id).where(Image.id.in_(chunk)))
        out.update({i: (e, c, x) for i, e, c, x in rows})
    return out


def flags_by_image(session: Session, kind: str, image_ids: set[int]) -> tuple[dict, dict]:
    """(open flag per image, latest kept/ambiguous resolved flag per image) of `kind` among `image_ids`."""
    opened, kept = {}, {}
    flags = session.scalars(
        select(Flag).where(Flag.kind == kind, (Flag.status == "open") | Flag.resolution.in_(KEPT)).order_by(Flag.id))
    for f in flags:
        if f.image_id in image_ids:
            (opened if f.status == "open" else kept)[f.image_id] = f
    return opened, kept


def raise_or_create(session: Session, *, kind: str, image_id: int, score: float, suggested: int | None,
                     details: dict, current_event: int | None, opened: dict, kept: dict, counts: dict) -> None:
    """One flag per image and kind: raise an open one's score, respect a kept label, or open a new one."""
    flag = opened.get(image_id)
    if flag is not None:
        if score > (flag.score or 0.0) + 1e-9:
            flag.details = {**details, "raised_from": flag.score}
            flag.score, flag.suggested_class_id = score, suggested
            counts["raised"] += 1
        else:
            counts["unchanged"] += 1
        return
    previous = kept.get(image_id)
    if previous is not None and previous.details.get("label_event_id") == current_event:
        if score <= (previous.score or 0.0) + 1e-9:
            counts["kept"] += 1
            return
        details = {**details, "previously_kept": previous.id}
    session.add(flagstate.raised(kind, image_id, score=score, suggested_class_id=suggested, details=details))
    counts["created"] += 1


def open_ids(session: Session, kind: str) -> set[int]:
    return set(session.scalars(select(Flag.image_id).where(Flag.kind == kind, Flag.status == "open")))
