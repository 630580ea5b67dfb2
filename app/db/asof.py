"""What the data looked like when a stored result was computed, and how much has changed since.

Stored results (quality reports, a snapshot's health, embedding analyses) keep
a stamp taken before they read anything, so a page can say "as of 3 min ago,
214 labels since" and never show a stale number as current. The stamp is the
newest label event, image and exclusion ids: each only grows, so counting rows
past them counts the changes.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.models import ExclusionEvent, Image, LabelEvent
from app.timeutil import iso, utcnow


def stamp(session: Session) -> dict:
    """What the data looked like: the time, and the newest label event, image and exclusion ids."""
    newest = lambda column: session.scalar(select(func.max(column))) or 0  # noqa: E731
    return {"at": iso(utcnow()), "label_event": newest(LabelEvent.id), "image": newest(Image.id),
            "exclusion": newest(ExclusionEvent.id)}


def changes_since(session: Session, seen: dict) -> dict:
    """Label events, imported images and exclusion changes made after `seen` (a `stamp`)."""
    since = lambda column, last: session.scalar(select(func.count()).where(column > last)) or 0  # noqa: E731
    out = {"labels": since(LabelEvent.id, seen.get("label_event", 0)), "images": since(Image.id, seen.get("image", 0)),
           "exclusions": since(ExclusionEvent.id, seen.get("exclusion", 0))}
    out["total"] = sum(out.values())
    return out
