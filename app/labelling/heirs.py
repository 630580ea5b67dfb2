"""Which class in use today an old class became: the one owner of "follow a merge forward".

A merged class is retired with `replaced_by_id` pointing at the class it went
into (which may itself be merged later); a split or plain retire leaves no heir.
Labels, predictions, flags and frozen snapshots keep the class ids they were made
with, so every reader that shows them in today's classes asks here.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.db.models import LabelClass


def heir(session: Session, class_id: int | None, cache: dict | None = None) -> LabelClass | None:
    """The active class `class_id` became (itself when active); None after a split or retire, or for None.

    `cache` (class id -> heir id or None) saves the walk when many rows share a few classes."""
    if class_id is None:
        return None
    if cache is not None and class_id in cache:
        found = cache[class_id]
        return session.get(LabelClass, found) if found is not None else None
    cls, seen = session.get(LabelClass, class_id), set()
    while cls is not None and cls.retired_version_id is not None and cls.id not in seen:
        seen.add(cls.id)
        cls = session.get(LabelClass, cls.replaced_by_id) if cls.replaced_by_id else None
    if cache is not None:
        cache[class_id] = cls.id if cls is not None else None
    return cls
