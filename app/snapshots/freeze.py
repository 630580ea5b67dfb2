"""Freeze a snapshot: filter the live labels, split, hash, and write it once.

Splits are stable across snapshots (see `app.snapshots.splits`): an image that
the latest earlier snapshot with the same seed, fractions and folds placed keeps
its split and fold, and near-duplicates (pHash confirmed by thumbnails, see
`app.snapshots.looks`) land together.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import LabelClass, Snapshot, SnapshotItem
from app.errors import Conflict, InvalidInput
from app.snapshots import looks, neardup, sets, splits
from app.snapshots.rows import Rows, live_rows
from app.snapshots.spec import SplitSpec, clean_name, parse_filter, parse_split
from app.taxonomy.queries import MULTI
from app.taxonomy.service import current_version


def create_snapshot(session: Session, *, name: str, filter: dict | None = None, split: dict | None = None) -> Snapshot:
    """Freeze the images whose current label passes `filter` into a new snapshot; commits.

    Each image keeps the exact label event it had now, so later relabelling or
    taxonomy changes never alter the snapshot. Refused (nothing written) when
    the name is taken, the filter names an unknown source, class or tag, or no
    image passes it.
    """
    name = clean_name(name)
    if session.scalar(select(Snapshot.id).where(Snapshot.name == name)) is not None:
        raise Conflict(f"a snapshot named '{name}' already exists")
    f = parse_filter(session, filter)
    spec = parse_split(split)
    version = current_version(session)
    if version is not None and version.mode == MULTI:
        return sets.freeze(session, name=name, f=f, spec=spec, version=version)
    rows = live_rows(session, f) if version is not None else Rows()
    if not len(rows):
        raise InvalidInput("no labelled images match this filter: nothing to freeze")

    class_ids = np.unique(rows.class_id).tolist()
    names = dict(session.execute(select(LabelClass.id, LabelClass.name).where(LabelClass.id.in_(class_ids))).all())
    shas = rows.sha256
    near = neardup.groups(rows.phash, confirm=looks.confirmer(session, shas))
    before = previous_places(session, spec)
    placed = splits.assign(shas, val=spec.val, test=spec.test, seed=spec.seed, folds=spec.folds, near=near,
                           previous=[before.get(i) for i in rows.image_id.tolist()])
    digest = splits.content_hash((sha, names[c], *p) for sha, c, p in zip(shas, rows.class_id.tolist(), placed))
    sizes = Counter(split for split, _ in placed)  # kept with the settings: counting 1,000,000 items per view is slow
    snapshot = Snapshot(
        name=name, taxonomy_version_id=version.id, filter=f.stored,
        split={**spec.as_dict(), "sizes": {part: sizes.get(part, 0) for part in splits.SPLITS}}, seed=spec.seed,
        classes=sorted(({"id": i, "name": names[i]} for i in class_ids), key=lambda c: (c["name"].lower(), c["id"])),
        hash=digest, count=len(rows),
    )
    session.add(snapshot)
    session.flush()
    # Plain executemany: the ORM's bulk insert spends seconds per 100k rows building parameters.
    conn = session.connection()
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"  # SQLite's driver : psycopg
    conn.exec_driver_sql(
        "INSERT INTO snapshot_items (snapshot_id, image_id, label_event_id, class_id, split, fold) "
        f"VALUES ({', '.join([mark] * 6)})",
        [(snapshot.id, i, e, c, *p)
         for i, e, c, p in zip(rows.image_id.tolist(), rows.event_id.tolist(), rows.class_id.tolist(), placed)],
    )
    session.commit()
    return snapshot


def previous_places(session: Session, spec: SplitSpec) -> dict[int, tuple[str, int]]:
    """image id -> (split, fold) in the latest snapshot frozen with the same seed, fractions and folds."""
    wanted = spec.as_dict()
    for snapshot_id, split in session.execute(
            select(Snapshot.id, Snapshot.split).where(Snapshot.seed == spec.seed).order_by(Snapshot.id.desc())):
        if {k: split.get(k) for k in wanted} == wanted:
            rows = session.execute(select(SnapshotItem.image_id, SnapshotItem.split, SnapshotItem.fold)
                                   .where(SnapshotItem.snapshot_id == snapshot_id))
            return {i: (s, f) for i, s, f in rows}
    return {}
