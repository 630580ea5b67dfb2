"""What a taxonomy change does to labels: bulk moves (merge), sets rewritten (a multi-label taxonomy's merge
and retire), and re-review flags (split, retire).

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
                          reverts_event_id, created_at, multi)
"""

# Point current labels at each image's newest event, for the images a version just moved.
_REFRESH = """
UPDATE current_labels
SET event_id = (SELECT max(e.id) FROM label_events e WHERE e.image_id = current_labels.image_id),
    class_id = (SELECT e.class_id FROM label_events e WHERE e.image_id = current_labels.image_id
                ORDER BY e.id DESC LIMIT 1),
    multi = (SELECT e.multi FROM label_events e WHERE e.image_id = current_labels.image_id
             ORDER BY e.id DESC LIMIT 1)
WHERE image_id IN (SELECT image_id FROM label_events WHERE taxonomy_version_id = :v AND kind = 'migration'
                   AND id > :after)
"""

# The classes of the migration events a version just wrote, from each image's current set (not yet refreshed):
# a merged class becomes its heir (two merged classes on one image become one), a dropped class goes.
_SET_CLASSES = """
INSERT INTO label_event_classes (event_id, class_id, confidence)
SELECT n.id, {mapped}, max(s.confidence)
FROM label_events n JOIN current_label_classes s ON s.image_id = n.image_id
WHERE n.taxonomy_version_id = :v AND n.kind = 'migration' AND n.id > :after {keep}
GROUP BY n.id, {mapped}
"""


def _max_event_id(session: Session) -> int:
    return session.execute(text("SELECT coalesce(max(id), 0) FROM label_events")).scalar()


def move_labels(session: Session, *, from_ids: list[int], to_id: int, version: TaxonomyVersion) -> int:
    """Carry every current label of `from_ids` forward to `to_id`; returns how many moved."""
    after = _max_event_id(session)
    stmt = text(_INSERT + """
        SELECT e.image_id, :to_id, e.confidence, e.tags, e.note, e.annotator, :v, 'migration', NULL, NULL, :now,
               :single
        FROM current_labels c JOIN label_events e ON e.id = c.event_id
        WHERE c.class_id IN :from_ids ORDER BY e.image_id
    """).bindparams(bindparam("from_ids", expanding=True))
    moved = session.execute(stmt, {"to_id": to_id, "v": version.id, "now": utcnow(), "from_ids": from_ids,
                                   "single": False}).rowcount
    moved += rewrite_sets(session, from_ids=from_ids, to_id=to_id, version=version, after=after)
    session.execute(text(_REFRESH), {"v": version.id, "after": after})
    return moved


def rewrite_sets(session: Session, *, from_ids: list[int], to_id: int | None, version: TaxonomyVersion,
                 after: int | None = None) -> int:
    """A new multi-label event for every image whose current set holds one of `from_ids`: those classes become
    `to_id` (a merge) or leave the set (`to_id` None: a retire). Returns how many images; with `after` given the
    caller refreshes current labels itself."""
    start = _max_event_id(session)
    refresh, after = after is None, start if after is None else after
    stmt = text(_INSERT + """
        SELECT e.image_id, NULL, e.confidence, e.tags, e.note, e.annotator, :v, 'migration', NULL, NULL, :now, :multi
        FROM current_labels c JOIN label_events e ON e.id = c.event_id
        WHERE c.multi AND EXISTS (SELECT 1 FROM current_label_classes s
                                  WHERE s.image_id = c.image_id AND s.class_id IN :from_ids)
        ORDER BY e.image_id
    """).bindparams(bindparam("from_ids", expanding=True))
    n = session.execute(stmt, {"v": version.id, "now": utcnow(), "from_ids": from_ids, "multi": True}).rowcount
    if n:
        mapped = "CASE WHEN s.class_id IN :from_ids THEN :to_id ELSE s.class_id END" if to_id else "s.class_id"
        keep = "" if to_id else "AND s.class_id NOT IN :from_ids"
        session.execute(text(_SET_CLASSES.format(mapped=mapped, keep=keep))
                        .bindparams(bindparam("from_ids", expanding=True)),
                        {"v": version.id, "after": start, "from_ids": from_ids,
                         **({"to_id": to_id} if to_id else {})})
    if refresh:
        session.execute(text(_REFRESH), {"v": version.id, "after": after})
    return n


def to_sets(session: Session, *, version: TaxonomyVersion) -> int:
    """Every current single-class label becomes the set of that one class (a taxonomy made multi-label), as a
    migration event keeping its confidence, tags, note and annotator; returns how many."""
    after = _max_event_id(session)
    n = session.execute(text(_INSERT + """
        SELECT e.image_id, NULL, e.confidence, e.tags, e.note, e.annotator, :v, 'migration', NULL, NULL, :now, :multi
        FROM current_labels c JOIN label_events e ON e.id = c.event_id
        WHERE c.class_id IS NOT NULL ORDER BY e.image_id
    """), {"v": version.id, "now": utcnow(), "multi": True}).rowcount
    session.execute(text("""
        INSERT INTO label_event_classes (event_id, class_id, confidence)
        SELECT n.id, c.class_id, e.confidence
        FROM label_events n JOIN current_labels c ON c.image_id = n.image_id JOIN label_events e ON e.id = c.event_id
        WHERE n.taxonomy_version_id = :v AND n.kind = 'migration' AND n.id > :after
    """), {"v": version.id, "after": after})
    session.execute(text(_REFRESH), {"v": version.id, "after": after})
    return n


# The set of the event before the one each new event replaces (audits aside): what an undone version's migration
# event had replaced.
_EARLIER_SETS = """
INSERT INTO label_event_classes (event_id, class_id, confidence)
SELECT n.id, lc.class_id, lc.confidence
FROM label_events n
JOIN label_event_classes lc ON lc.event_id = (
    SELECT max(p.id) FROM label_events p
    WHERE p.image_id = n.image_id AND p.kind != 'audit'
      AND p.id < (SELECT max(q.id) FROM label_events q WHERE q.image_id = n.image_id AND q.id < n.id))
WHERE n.taxonomy_version_id = :v AND n.kind = 'migration' AND n.id > :after AND n.multi
"""


def move_back(session: Session, *, undone: TaxonomyVersion, version: TaxonomyVersion) -> int:
    """Undo the moves of version `undone` for images nobody relabelled since: each gets its earlier class back,
    or its earlier set (a multi-label merge or retire rewrote sets)."""
    after = _max_event_id(session)
    moved = session.execute(text(_INSERT + """
        SELECT cur.image_id, prev.class_id, cur.confidence, cur.tags, cur.note, cur.annotator, :v, 'migration',
               NULL, NULL, :now, :single
        FROM current_labels c
        JOIN label_events cur ON cur.id = c.event_id
        JOIN label_events prev ON prev.id = (SELECT max(p.id) FROM label_events p
                                             WHERE p.image_id = cur.image_id AND p.id < cur.id
                                               AND p.kind != 'audit')
        WHERE cur.kind = 'migration' AND cur.taxonomy_version_id = :undone AND NOT cur.multi ORDER BY cur.image_id
    """), {"v": version.id, "undone": undone.id, "now": utcnow(), "single": False}).rowcount
    sets_from = _max_event_id(session)
    moved += session.execute(text(_INSERT + """
        SELECT cur.image_id, NULL, cur.confidence, cur.tags, cur.note, cur.annotator, :v, 'migration',
               NULL, NULL, :now, :multi
        FROM current_labels c JOIN label_events cur ON cur.id = c.event_id
        WHERE cur.kind = 'migration' AND cur.taxonomy_version_id = :undone AND cur.multi ORDER BY cur.image_id
    """), {"v": version.id, "undone": undone.id, "now": utcnow(), "multi": True}).rowcount
    session.execute(text(_EARLIER_SETS), {"v": version.id, "after": sets_from})
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
        FROM (SELECT image_id FROM current_labels WHERE class_id = :cid
              UNION SELECT image_id FROM current_label_classes WHERE class_id = :cid) AS carrying
        ORDER BY image_id
    """), {"details": json.dumps(details), "v": version.id, "now": utcnow(), "cid": class_id,
          "open": flagstate.OPEN}).rowcount


def cancel_rereviews(session: Session, version_id: int) -> int:
    """Close the open re-reviews a version created (its undo made them moot)."""
    return flagstate.cancel_where(session, Flag.kind == "rereview", Flag.created_version_id == version_id)
