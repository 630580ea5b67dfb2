"""Snapshots of a multi-label taxonomy: each image frozen with its set of classes.

A snapshot frozen while the taxonomy is multi-label keeps, per image, the exact
label event it took (as every snapshot does) and so its set: the event's
label_event_classes, restricted to the snapshot's classes (the filter's, or
every active class). An image whose set holds none of them stays in: "none of
these" is an answer a multi-label model learns from. Splits and folds come
from iterative stratification (`app.snapshots.stratify`), anchored to every
earlier snapshot with the same seed and settings.

Its items (`classes`), health report, diffs and CSV / JSONL / hf exports carry
the sets, and so do training jobs (one sigmoid per class, app.training.multilabel)
and the stored diffs of big snapshots; the formats that carry one class per
image (ImageFolder, CVAT, FiftyOne) refuse a multi-label snapshot with a
sentence (app.snapshots.export).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import LabelClass, Snapshot, SnapshotItem, TaxonomyVersion
from app.errors import InvalidInput
from app.labelling.events import event_classes
from app.snapshots import looks, neardup, splits
from app.snapshots.rows import Rows, live_rows
from app.snapshots.spec import Filter, SplitSpec
from app.snapshots.stratify import assign_sets
from app.taxonomy.queries import MULTI, active_classes


def is_multi(session: Session, snapshot: Snapshot) -> bool:
    """Frozen under a multi-label taxonomy version: its images carry sets."""
    version = session.get(TaxonomyVersion, snapshot.taxonomy_version_id)
    return version is not None and version.mode == MULTI


def with_sets(session: Session, rows: Rows, keep: set[int]) -> Rows:
    """`rows` with each image's set: its label event's classes within `keep`."""
    by_event = event_sets(session, rows.event_id.tolist(), keep)
    rows.sets = [by_event.get(e, ()) for e in rows.event_id.tolist()]
    return rows


def live_sets(session: Session, f: Filter, keep: set[int]) -> Rows:
    """Images whose current label is a set and passes `f`, in id order, each with its set within `keep`."""
    return with_sets(session, live_rows(session, f, sets=True), keep)


def event_sets(session: Session, event_ids: list[int], keep: set[int] | None = None) -> dict[int, tuple[int, ...]]:
    """The class ids of each multi-label event (within `keep` when given), sorted."""
    return {e: tuple(c for c, _ in pairs if keep is None or c in keep)
            for e, pairs in event_classes(session, event_ids).items()}


def previous_places(session: Session, spec: SplitSpec) -> dict[int, tuple[str, int]]:
    """image id -> (split, fold) from every earlier snapshot frozen with the same seed, fractions and folds (the
    latest wins): stratification depends on the other images, so an image kept out of the latest snapshot must
    still find its place."""
    wanted = spec.as_dict()
    found: dict[int, tuple[str, int]] = {}
    for snapshot_id, split in session.execute(
            select(Snapshot.id, Snapshot.split).where(Snapshot.seed == spec.seed).order_by(Snapshot.id.desc())):
        if {k: split.get(k) for k in wanted} != wanted:
            continue
        for image_id, part, fold in session.execute(
                select(SnapshotItem.image_id, SnapshotItem.split, SnapshotItem.fold)
                .where(SnapshotItem.snapshot_id == snapshot_id)):
            found.setdefault(image_id, (part, fold))
    return found


def freeze(session: Session, *, name: str, f: Filter, spec: SplitSpec, version: TaxonomyVersion) -> Snapshot:
    """Freeze the labelled sets passing `f` (see the module); commits."""
    keep = set(f.class_ids) if f.class_ids else {c.id for c in active_classes(session)}
    rows = live_sets(session, f, keep)
    if not len(rows):
        raise InvalidInput("no labelled images match this filter: nothing to freeze")
    names = dict(session.execute(select(LabelClass.id, LabelClass.name).where(LabelClass.id.in_(keep))).all())
    near = neardup.groups(rows.phash, confirm=looks.confirmer(session, rows.sha256))
    before = previous_places(session, spec)
    placed = assign_sets(rows.sha256, rows.sets, val=spec.val, test=spec.test, seed=spec.seed, folds=spec.folds,
                         near=near, previous=[before.get(i) for i in rows.image_id.tolist()])
    digest = splits.content_hash((sha, "+".join(sorted(names[c] for c in s)), *p)
                                 for sha, s, p in zip(rows.sha256, rows.sets, placed))
    sizes = {part: sum(1 for p, _ in placed if p == part) for part in splits.SPLITS}
    snapshot = Snapshot(
        name=name, taxonomy_version_id=version.id, filter=f.stored, split={**spec.as_dict(), "sizes": sizes},
        seed=spec.seed, hash=digest, count=len(rows),
        classes=sorted(({"id": i, "name": n} for i, n in names.items()), key=lambda c: (c["name"].lower(), c["id"])),
    )
    session.add(snapshot)
    session.flush()
    session.execute(SnapshotItem.__table__.insert(), [
        {"snapshot_id": snapshot.id, "image_id": i, "label_event_id": e, "class_id": None, "split": p, "fold": k}
        for i, e, (p, k) in zip(rows.image_id.tolist(), rows.event_id.tolist(), placed)])
    session.commit()
    return snapshot


def set_counts(session: Session, snapshot: Snapshot) -> dict[int, int]:
    """Class id -> how many of the snapshot's images carry it in their frozen set (classes none carries left
    out)."""
    keep = {c["id"] for c in snapshot.classes}
    events = session.scalars(select(SnapshotItem.label_event_id).where(SnapshotItem.snapshot_id == snapshot.id))
    counts: dict[int, int] = {}
    for members in event_sets(session, list(events), keep).values():
        for c in members:
            counts[c] = counts.get(c, 0) + 1
    return counts


def item_classes(session: Session, snapshot: Snapshot, event_ids: list[int]) -> dict[int, list[str]]:
    """Label event id -> the class names of its set within the snapshot's classes, as frozen."""
    names = {c["id"]: c["name"] for c in snapshot.classes}
    return {e: [names[c] for c in s] for e, s in event_sets(session, event_ids, set(names)).items()}
