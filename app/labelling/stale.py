"""Flags whose cause is gone close themselves (`cancel_stale`: status and
resolution "cancelled", details["cancelled_because"] says why). It runs where
the cause changes (every label write, a review decision, an exclusion) and when
the review page loads. The rules, per kind:

- any open (or pending audit) flag on an **excluded** image: an excluded image is out of the dataset;
- **duplicate**: every labelled, not excluded member of the flag's group (details["group"]) carries one
  class now: the conflict is gone;
- **mislabel** and **audit**: the image's current label is not the one the flag judged
  (details["label_event_id"]) and a person chose another class since (not a migration, an import or an
  undo): relabelled to the suggested class, or to another class on purpose; a restatement of the same
  class leaves the flag open (that is a "keep", decided in review);
- **rereview**: the image's current class is one of the offered classes (labelling normally resolves these;
  this catches any label written without that check).

This module sits with labelling, not quality, because label writes and
exclusions (below quality) call it: the rules are about a flag's cause, and
every cause is a label, an exclusion or a taxonomy change.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import flagstate
from app.db.models import CurrentLabel, Flag, Image, LabelEvent
from app.labelling.heirs import heir
from app.timeutil import utcnow


def _active(session: Session, class_id: int, cache: dict) -> int | None:
    cls = heir(session, class_id, cache)
    return cls.id if cls is not None else None


PERSON_KINDS_EXCLUDED = ("migration", "import", "undo")  # label events that are no person's new decision


def _why_stale(flag: Flag, current: tuple | None, excluded: bool, group_classes: dict[int, tuple],
               suggested_heir: int | None = None) -> str | None:
    details = flag.details or {}
    if excluded:
        return "the image is excluded from the dataset"
    event_id, class_id, kind, judged_class = current or (None, None, None, None)
    if flag.kind == "duplicate":
        labels = {c for c, x in (group_classes.get(int(i), (None, True)) for i in details.get("group", [])) if
                  c is not None and not x}
        if len(details.get("group", [])) > 1 and len(labels) <= 1:
            return "the near-duplicates' labels agree now"
    elif flag.kind in ("mislabel", "audit") and flag.status == "open":
        judged = details.get("label_event_id")
        if kind == "migration" and suggested_heir is not None and class_id == suggested_heir:
            return f"a taxonomy change made its label and the suggested class one class (label event #{event_id})"
        if judged is None or event_id is None or event_id == judged or kind in PERSON_KINDS_EXCLUDED:
            return None
        if judged_class is not None and class_id == judged_class:
            return None
        if flag.suggested_class_id is not None and class_id == flag.suggested_class_id:
            return f"relabelled to the suggested class by label event #{event_id}"
        return f"relabelled by a person after the flag (label event #{event_id})"
    elif flag.kind == "rereview":
        offered = details.get("classes") or []  # None after a retire: any class, resolved by labelling
        if class_id is not None and class_id in offered:
            return f"labelled with an offered class (label event #{event_id})"
    return None


STALE_CHUNK = 5000  # images per round: under SQLite's and PostgreSQL's limits on bound parameters


def cancel_stale(session: Session, image_ids) -> list[int]:
    """Cancel the open flags of `image_ids` (and of their duplicate groups) whose cause is gone; flushes,
    does not commit. Returns the cancelled flag ids."""
    ids = sorted({int(i) for i in image_ids})
    cancelled = []
    for start in range(0, len(ids), STALE_CHUNK):
        cancelled += _cancel_stale(session, set(ids[start:start + STALE_CHUNK]))
    return cancelled


def _cancel_stale(session: Session, ids: set[int]) -> list[int]:
    flags = session.scalars(select(Flag).where(
        Flag.image_id.in_(list(ids)), (Flag.status == "open") | ((Flag.status == "pending") & (Flag.kind == "audit"))
    )).all()
    # A label change on one member can end the conflict flagged on the others.
    group_ids = {int(i) for f in flags if f.kind == "duplicate" for i in (f.details or {}).get("group", [])}
    others = session.scalars(select(Flag).where(Flag.image_id.in_(list(group_ids - ids)), Flag.kind == "duplicate",
                                                Flag.status == "open")).all() if group_ids - ids else []
    flags = list(flags) + list(others)
    if not flags:
        return []
    every = {f.image_id for f in flags} | group_ids
    judged = {int(e) for f in flags if (e := (f.details or {}).get("label_event_id"))}
    judged_class = dict(session.execute(select(LabelEvent.id, LabelEvent.class_id)
                                        .where(LabelEvent.id.in_(list(judged)))).all()) if judged else {}
    rows = session.execute(
        select(Image.id, Image.excluded, CurrentLabel.event_id, CurrentLabel.class_id, LabelEvent.kind)
        .outerjoin(CurrentLabel, CurrentLabel.image_id == Image.id)
        .outerjoin(LabelEvent, LabelEvent.id == CurrentLabel.event_id)
        .where(Image.id.in_(list(every)))).all()
    state = {i: (x, e, c, k) for i, x, e, c, k in rows}
    group_classes = {i: (c, x) for i, (x, e, c, k) in state.items()}
    now, cancelled, heirs = utcnow(), [], {}
    for f in flags:
        excluded, event, cls, kind = state.get(f.image_id, (False, None, None, None))
        current = (event, cls, kind, judged_class.get((f.details or {}).get("label_event_id")))
        heir = None if f.suggested_class_id is None else _active(session, f.suggested_class_id, heirs)
        why = _why_stale(f, current, excluded, group_classes, heir)
        if why is None:
            continue
        flagstate.cancel(f, why, at=now)
        cancelled.append(f.id)
    session.flush()
    return cancelled


