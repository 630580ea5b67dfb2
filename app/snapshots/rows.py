"""The facts the snapshot code works on, one `Row` per labelled image: live, or as a snapshot froze them.

Each loader is a handful of queries (no per-row lookups) so that 100,000
images load in well under a second.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from app.db.models import CurrentLabel, Flag, Image, LabelClass, LabelEvent, Snapshot, SnapshotItem, Source
from app.snapshots.spec import Filter


@dataclass(slots=True)
class Row:
    image_id: int
    sha256: str
    source: str
    class_id: int
    event_id: int
    confidence: float | None
    tags: tuple[str, ...]
    ms: int | None
    phash: int
    flagged: bool = False
    split: str | None = None
    fold: int | None = None


@lru_cache(maxsize=4096)
def _tags(raw: str | None) -> tuple[str, ...]:
    """Parsed tags; a dataset repeats few distinct tag lists, so each is parsed once."""
    return () if raw in (None, "[]") else tuple(json.loads(raw))


def flagged_ids(session: Session) -> set[int]:
    """Images with an open flag (anything a person should look at again)."""
    return set(session.scalars(select(Flag.image_id).where(Flag.status == "open")))


def ambiguous_ids(session: Session) -> set[int]:
    """Images a reviewer marked ambiguous."""
    return set(session.scalars(select(Flag.image_id).where(Flag.status == "resolved", Flag.resolution == "ambiguous")))


def source_names(session: Session) -> dict[int, str]:
    return dict(session.execute(select(Source.id, Source.name)).all())


_COLUMNS = (Image.id, Image.sha256, Image.source_id, LabelEvent.class_id, LabelEvent.id, LabelEvent.confidence,
            cast(LabelEvent.tags, Text), LabelEvent.ms, Image.phash)


def live_rows(session: Session, f: Filter) -> list[Row]:
    """Images whose current label (on an active class) passes `f`, in id order."""
    q = (
        select(*_COLUMNS)
        .select_from(CurrentLabel)
        .join(Image, Image.id == CurrentLabel.image_id)
        .join(LabelEvent, LabelEvent.id == CurrentLabel.event_id)
        .join(LabelClass, LabelClass.id == CurrentLabel.class_id)
        .where(LabelClass.retired_version_id.is_(None))
        .order_by(Image.id)
    )
    if f.source_ids:
        q = q.where(Image.source_id.in_(f.source_ids))
    if f.class_ids:
        q = q.where(CurrentLabel.class_id.in_(f.class_ids))
    if f.min_confidence is not None:
        q = q.where(LabelEvent.confidence >= f.min_confidence)
    if f.exclude_excluded:
        q = q.where(Image.excluded.is_(False))
    if f.labelled_before is not None:
        q = q.where(LabelEvent.created_at < f.labelled_before)
    flagged = flagged_ids(session)
    skip = set(flagged) if f.exclude_flagged else set()
    if f.exclude_ambiguous:
        skip |= ambiguous_ids(session)
    names = source_names(session)
    drop_tags = set(f.exclude_tags)
    rows = []
    # Core rows (session.connection()): the ORM's per-row result handling costs seconds at 100k rows.
    for iid, sha, src, cls, ev, conf, tags, ms, ph in session.connection().execute(q).all():
        if iid in skip:
            continue
        tag_list = _tags(tags)
        if drop_tags and drop_tags.intersection(tag_list):
            continue
        rows.append(Row(iid, sha, names[src], cls, ev, conf, tag_list, ms, ph, iid in flagged))
    return rows


def snapshot_rows(session: Session, snapshot: Snapshot) -> list[Row]:
    """A snapshot's images with the label events it froze (flags are today's: they are not frozen)."""
    q = (
        select(*_COLUMNS, SnapshotItem.split, SnapshotItem.fold)
        .select_from(SnapshotItem)
        .join(Image, Image.id == SnapshotItem.image_id)
        .join(LabelEvent, LabelEvent.id == SnapshotItem.label_event_id)
        .where(SnapshotItem.snapshot_id == snapshot.id)
        .order_by(SnapshotItem.image_id)
    )
    flagged = flagged_ids(session)
    names = source_names(session)
    return [
        Row(iid, sha, names[src], cls, ev, conf, _tags(tags), ms, ph, iid in flagged, split, fold)
        for iid, sha, src, cls, ev, conf, tags, ms, ph, split, fold in session.connection().execute(q).all()
    ]
