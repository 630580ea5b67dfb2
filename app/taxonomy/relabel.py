"""What a taxonomy change does to labels: bulk moves (merge) and re-review flags (split, retire).

Set-based SQL, because a merge may move 100,000 labels and must stay well under
a few seconds. Every move is a new label event of kind "migration" that keeps
the confidence, tags, note and annotator of the event it carries forward.
"""

from __future__ import annotations

import json

from sqlalchemy import bindparam, text
from sqlalchemy.orm import Session

from app.db import flagstate
from app.db.models import Flag, TaxonomyVersion
from app.timeutil import utcnow

_INSERT = """
INSERT INTO label_events (image_id, class_id, confidence, tags, note, annotator, taxonomy_version_id, kind, ms,
                          reverts_event_id, created_at)
"""

# Point current labels at each image's newest event, for the images a version just moved.
_REFRESH = """
UPDATE current_labels
SET event_id = (SELECT max(e.id) FROM label_events e WHERE e.image_id = current_labels.image_id),
    class_id = (SELECT e.class_id FROM label_events e WHERE e.image_id = current_labels.image_id
                ORDER BY e.id DESC LIMIT 1)
WHERE image_id IN (SELECT image_id FROM label_events WHERE taxonomy_version_id = :v AND kind = 'migration'
                   AND id > :after)
"""


def _max_event_id(session: Session) -> int:
    return session.execute(text("SELECT coalesce(max(id), 0) FROM label_events")).scalar()


def move_labels(session: Session, *, from_ids: list[int], to_id: int, version: TaxonomyVersion) -> int:
    """Carry every current label of `from_ids` forward to `to_id`; returns how many moved."""
    after = _max_event_id(session)
    stmt = text(_INSERT + """
        SELECT e.image_id, :to_id, e.confidence, e.tags, e.note, e.annotator, :v, 'migration', NULL, NULL, :now
        FROM current_labels c JOIN label_events e ON e.id = c.event_id
        WHERE c.class_id IN :from_ids ORDER BY e.image_id
    """).bindparams(bindparam("from_ids", expanding=True))
    moved = session.execute(stmt, {"to_id": to_id, "v": version.id, "now": utcnow(), "from_ids": from_ids}).rowcount
    session.execute(text(_REFRESH), {"v": version.id, "after": after})
    return moved


def move_back(session: Session, *, undone: TaxonomyVersion, version: TaxonomyVersion) -> int:
    """Undo the moves of version `undone` for images nobody relabelled since: each gets its earlier class back."""
    after = _max_event_id(session)
    moved = session.execute(text(_INSERT + """
        SELECT cur.image_id, prev.class_id, cur.confidence, cur.tags, cur.note, cur.annotator, :v, 'migration',
               NULL, NULL, :now
        FROM current_labels c
        JOIN label_events cur ON cur.id = c.event_id
        JOIN label_events prev ON prev.id = (SELECT max(p.id) FROM label_events p
                                             WHERE p.image_id = cur.image_id AND p.id < cur.id
                                               AND p.kind != 'audit')
        WHERE cur.kind = 'migration' AND cur.taxonomy_version_id = :undone ORDER BY cur.image_id
    """), {"v": version.id, "undone": undone.id, "now": utcnow()}).rowcount
    session.execute(text(_REFRESH), {"v": version.id, "after": after})
    return moved


def flag_for_rereview(
    session: Session, *, class_id: int, version: TaxonomyVersion, offered: list[int] | None, reason: str
) -> int:
    """Open a re-review flag for every image whose current label is `class_id`."""
    details = {"reason": reason, "from_class_id": class_id, "classes": offered, "version": version.number}
    return session.execute(text("""
        INSERT INTO flags (image_id, kind, score, suggested_class_id, status, details, created_version_id, created_at)
        SELECT image_id, 'rereview', NULL, NULL, :open, :details, :v, :now
        FROM current_labels WHERE class_id = :cid ORDER BY image_id
    """), {"details": json.dumps(details), "v": version.id, "now": utcnow(), "cid": class_id,
          "open": flagstate.OPEN}).rowcount


def cancel_rereviews(session: Session, version_id: int) -> int:
    """Close the open re-reviews a version created (its undo made them moot)."""
    return flagstate.cancel_where(session, Flag.kind == "rereview", Flag.created_version_id == version_id)
