"""Exclusions: an image taken out of the dataset (or put back) is an append-only event with a reason.

images.excluded is the materialised state of the latest event; the source_counts triggers keep the
per-source numbers right from it. Nothing is deleted: an include after an exclude is a second event.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.db.models import ExclusionEvent, Image
from app.errors import Conflict, InvalidInput, NotFound
from app.labelling.stale import cancel_stale
from app.timeutil import iso

MAX_REASON = 2000
MAX_ANNOTATOR = 100  # as label events' annotator column
CHUNK = 5000  # ids per IN list: SQLite's bound-parameter limit is far above, PostgreSQL's plans stay small


def clean_reason(reason: str | None, *, excluded: bool) -> str:
    """The reason as stored; an exclusion needs one (a later reader must see why an image left)."""
    text = " ".join((reason or "").split())
    if excluded and not text:
        raise InvalidInput("say why the image is excluded (a reason is required)")
    if len(text) > MAX_REASON:
        raise InvalidInput(f"reasons are at most {MAX_REASON} characters")
    return text


def clean_annotator(annotator: str | None) -> str:
    who = " ".join((annotator or "").split()) or "anonymous"
    if len(who) > MAX_ANNOTATOR:
        raise InvalidInput(f"annotator names are at most {MAX_ANNOTATOR} characters")
    return who


def changing(session: Session, image_ids: Sequence[int], *, excluded: bool) -> list[int]:
    """The ids among `image_ids` whose state an exclude (or include) would change, in id order."""
    ids = sorted({int(i) for i in image_ids})
    found = []
    for start in range(0, len(ids), CHUNK):
        found += session.scalars(select(Image.id).where(
            Image.id.in_(ids[start:start + CHUNK]), Image.excluded.is_(not excluded)))
    return sorted(found)


def set_excluded(session: Session, image_ids: Sequence[int], *, excluded: bool, reason: str, annotator: str,
                 bulk_action_id: int | None = None, flag_id: int | None = None,
                 settle: bool = True) -> list[ExclusionEvent]:
    """Exclude (or include) the images whose state changes: one event each, images.excluded set; flushes,
    the caller commits. Images already in that state get no event (an undo must not touch them).
    `settle`: cancel the flags an exclusion makes moot (a review resolves its own flag first, then settles)."""
    reason, who = clean_reason(reason, excluded=excluded), clean_annotator(annotator)
    ids = changing(session, image_ids, excluded=excluded)
    events = [ExclusionEvent(image_id=i, excluded=excluded, reason=reason, annotator=who,
                             bulk_action_id=bulk_action_id, flag_id=flag_id) for i in ids]
    session.add_all(events)
    for start in range(0, len(ids), CHUNK):
        session.execute(update(Image).where(Image.id.in_(ids[start:start + CHUNK])).values(excluded=excluded),
                        execution_options={"synchronize_session": False})
    changed = set(ids)
    for obj in list(session.identity_map.values()):  # images loaded earlier hold the old state
        if isinstance(obj, Image) and obj.id in changed:
            session.expire(obj)
    session.flush()
    if excluded and ids and settle:
        cancel_stale(session, ids)  # an excluded image's open flags have no cause left
    return events


def exclude(session: Session, image_id: int, *, reason: str, annotator: str = "",
            flag_id: int | None = None) -> ExclusionEvent:
    """Take one image out of the dataset; commits. 409 when it is excluded already."""
    return _one(session, image_id, excluded=True, reason=reason, annotator=annotator, flag_id=flag_id)


def include(session: Session, image_id: int, *, reason: str = "", annotator: str = "") -> ExclusionEvent:
    """Put an excluded image back; commits. 409 when it is not excluded."""
    return _one(session, image_id, excluded=False, reason=reason, annotator=annotator)


def _one(session: Session, image_id: int, *, excluded: bool, reason: str, annotator: str,
         flag_id: int | None = None) -> ExclusionEvent:
    image = session.get(Image, image_id)
    if image is None:
        raise NotFound(f"no image {image_id}")
    if bool(image.excluded) == excluded:
        raise Conflict(f"image {image_id} is {'excluded' if excluded else 'included'} already; nothing changed")
    event = set_excluded(session, [image_id], excluded=excluded, reason=reason, annotator=annotator,
                         flag_id=flag_id)[0]
    session.commit()
    return event


def latest_events(session: Session, image_ids: Sequence[int]) -> dict[int, int]:
    """Each image's latest exclusion event id (images with none are left out)."""
    ids = sorted({int(i) for i in image_ids})
    latest: dict[int, int] = {}
    for start in range(0, len(ids), CHUNK):
        latest.update(session.execute(
            select(ExclusionEvent.image_id, func.max(ExclusionEvent.id))
            .where(ExclusionEvent.image_id.in_(ids[start:start + CHUNK])).group_by(ExclusionEvent.image_id)).all())
    return latest


def event_view(event: ExclusionEvent) -> dict:
    return {"id": event.id, "image": event.image_id, "excluded": event.excluded, "reason": event.reason,
            "annotator": event.annotator, "bulk_action": event.bulk_action_id, "flag": event.flag_id,
            "created_at": iso(event.created_at)}


def exclusion_history(session: Session, image_id: int) -> list[dict]:
    """Every exclude / include of an image, oldest first."""
    return [event_view(e) for e in session.scalars(
        select(ExclusionEvent).where(ExclusionEvent.image_id == image_id).order_by(ExclusionEvent.id))]
