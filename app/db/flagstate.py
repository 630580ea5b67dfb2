"""The life of a flag, written once: every change of a flag's status goes through these functions.

A flag is raised `open` (a question for a reviewer) or `pending` (an audit
waiting for its blind second label); it ends `resolved` with a reviewer's
decision, or `cancelled` when its cause went away, never deleted. A resolved
flag can be reopened (its decision undone); a pending audit opens when the two
labels disagree. Which flags to change, and why, is each domain package's
rule (quality, labelling's re-review, the taxonomy, embeddings' outliers); how
a status changes, and what it leaves in the row, is this module's. It sits with
the tables so every package can use it without importing the ones above it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, update
from sqlalchemy.orm import Session

from app.db.models import Flag
from app.db.vocab import FlagKind, FlagResolution
from app.timeutil import utcnow

OPEN, PENDING, RESOLVED, CANCELLED = "open", "pending", "resolved", "cancelled"


def raised(kind: FlagKind, image_id: int, *, details: dict | None = None, pending: bool = False,
           **columns) -> Flag:
    """A new flag (add it to the session): open, or pending for an audit that waits for its second label."""
    return Flag(image_id=image_id, kind=kind, status=PENDING if pending else OPEN, details=details or {},
                **columns)


def resolve(flag: Flag, resolution: FlagResolution, *, event_id: int | None, who: str | None,
            at: datetime | None = None) -> None:
    """A decision: the label event that carried it (None when the decision wrote no label) and who made it."""
    flag.status, flag.resolution, flag.resolved_at = RESOLVED, resolution, at or utcnow()
    flag.resolution_event_id, flag.resolved_by = event_id, who


def cancel(flag: Flag, because: str | None = None, at: datetime | None = None) -> None:
    """The cause went away; `because` says how (kept in details["cancelled_because"])."""
    flag.status, flag.resolution, flag.resolved_at = CANCELLED, CANCELLED, at or utcnow()
    if because:
        flag.details = {**(flag.details or {}), "cancelled_because": because}


def cancel_where(session: Session, *conditions: ColumnElement[bool]) -> int:
    """Cancel every open flag matching `conditions` in one statement (thousands at once, e.g. the re-reviews of
    an undone taxonomy version); no reason is written per row. Returns how many."""
    result = session.execute(update(Flag).where(Flag.status == OPEN, *conditions)
                             .values(status=CANCELLED, resolution=CANCELLED, resolved_at=utcnow()))
    return result.rowcount


def reopen(flag: Flag) -> None:
    """The decision was undone: the flag asks again."""
    flag.status, flag.resolution, flag.resolved_at, flag.resolved_by, flag.resolution_event_id = \
        OPEN, None, None, None, None


def ask(flag: Flag, *, score: float, suggested_class_id: int | None) -> None:
    """A pending audit whose two labels disagree becomes a question for a reviewer."""
    flag.status, flag.score, flag.suggested_class_id = OPEN, score, suggested_class_id
