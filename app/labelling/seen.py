"""What a labelling page saw: the image's current label event when it was shown, checked again on save.

Two tabs of one browser share a lease (leases are per browser), so both can show the same image; without
this check the second tab's key would label it a second time without a word. The page sends the event it
saw (`seen_event`, None for an unlabelled image); a save whose image has moved on since is refused.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.db.models import CurrentLabel, Image, LabelClass
from app.errors import Conflict, NotFound


def current_event_id(session: Session, image_id: int) -> int | None:
    """The image's current label event (None when it was never labelled)."""
    current = session.get(CurrentLabel, image_id)
    return current.event_id if current else None


def check_seen(session: Session, image_id: int, seen_event: int | None) -> None:
    """Refuse (409) a save made on a stale view: the image's current label event is not the one the page saw.

    Call it in the save's own write transaction, so no other save can slip between the check and the write."""
    if session.get(Image, image_id) is None:
        raise NotFound(f"no image {image_id}")
    current = session.get(CurrentLabel, image_id)
    if (current.event_id if current else None) == seen_event:
        return
    cls = session.get(LabelClass, current.class_id) if current and current.class_id is not None else None
    what = f"labelled '{cls.name}'" if cls else "unlabelled"
    raise Conflict(f"image {image_id} was {what} meanwhile (in another tab or by someone else); "
                   "your key changed nothing")
