"""Re-review after a split or retire: which classes an image may now take, and closing its flag.

A split cannot guess which new class an image belongs to, so its images wait
in a re-review flag that offers only the split's classes (a retire offers all
the remaining ones). Labelling such an image resolves the flag.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import flagstate
from app.db.models import Flag, LabelClass, LabelEvent
from app.errors import InvalidInput
from app.labelling.heirs import heir

KIND = "rereview"


def open_flag(session: Session, image_id: int) -> Flag | None:
    return session.scalars(
        select(Flag).where(Flag.image_id == image_id, Flag.kind == KIND, Flag.status == "open").order_by(Flag.id.desc())
    ).first()


def offered_classes(session: Session, flag: Flag) -> list[LabelClass]:
    """The active classes this re-review may choose from (all active ones when none remain)."""
    ids = flag.details.get("classes")
    if ids:
        offered = []
        for cid in ids:
            cls = heir(session, cid)
            if cls is not None and cls not in offered:
                offered.append(cls)
        if offered:
            return offered
    return list(
        session.scalars(
            select(LabelClass).where(LabelClass.retired_version_id.is_(None))
            .order_by(LabelClass.position, LabelClass.id)
        )
    )


def offered_ids(session: Session, flag: Flag | None) -> list[int] | None:
    """Class ids an image in re-review (its open flag: `open_flag`) may take; None means any."""
    return [c.id for c in offered_classes(session, flag)] if flag else None


def open_to_any(session: Session, image_id: int, *, annotator: str = "") -> Flag | None:
    """"None of these": the person found no offered class fits, so the re-review takes any active class.

    The offer is widened on the open flag (what it offered stays in details["offered"]); the label that
    follows resolves the flag as usual. Flushes, the label's commit keeps both or neither.
    """
    flag = open_flag(session, image_id)
    if flag is None:
        return None
    details = dict(flag.details or {})
    if details.get("classes"):
        details["offered"] = details["classes"]
    details["classes"] = None
    details["none_of_these_by"] = " ".join((annotator or "").split()) or "anonymous"
    flag.details = details
    session.flush()
    return flag


def settle(session: Session, events: Sequence[LabelEvent]) -> None:
    """After new label events: resolve (or, for an undo, reopen) re-review flags; refuse classes not offered."""
    by_image = {e.image_id: e for e in events}
    if not by_image:
        return
    flags = session.scalars(
        select(Flag).where(Flag.image_id.in_(list(by_image)), Flag.kind == KIND, Flag.status == "open")
    ).all()
    for flag in flags:
        event = by_image[flag.image_id]
        if event.kind in ("migration", "undo"):
            continue
        offered = offered_classes(session, flag)
        # A set (multi-label) is a whole answer in today's classes: the retired one cannot be in it, and the
        # others on the image keep their say; any set settles the re-review.
        if not event.multi and event.class_id not in {c.id for c in offered}:
            names = ", ".join(c.name for c in offered)
            raise InvalidInput(
                f"image {flag.image_id} is waiting in re-review ({flag.details.get('reason', 'taxonomy change')}); "
                f"choose one of: {names}"
            )
        flagstate.resolve(flag, "relabel", event_id=event.id, who=event.annotator)
    _reopen_all(session, [e.reverts_event_id for e in events if e.kind == "undo" and e.reverts_event_id])


def resolved_by(session: Session, event_id: int) -> Flag | None:
    """The re-review flag this label event closed, if any (undoing it reopens the re-review)."""
    return session.scalars(select(Flag).where(Flag.resolution_event_id == event_id, Flag.kind == KIND)).first()


def _reopen_all(session: Session, resolving_event_ids: list[int]) -> None:
    """Undoing the label that closed a re-review puts the image back in re-review (as a new flag); one query
    per 5,000 undone events, as a bulk undo reverts thousands at once."""
    for start in range(0, len(resolving_event_ids), 5000):
        chunk = resolving_event_ids[start:start + 5000]
        first: dict[int, Flag] = {}
        for flag in session.scalars(select(Flag).where(Flag.resolution_event_id.in_(chunk), Flag.kind == KIND)
                                    .order_by(Flag.id)):
            first.setdefault(flag.resolution_event_id, flag)
        for closed in first.values():
            session.add(flagstate.raised(KIND, closed.image_id, details=dict(closed.details),
                                         created_version_id=closed.created_version_id))
