"""Health reports for a snapshot and for the live dataset, and the diff between two snapshots, computed now.

Past `Settings.quality_live_max` images a frozen snapshot's health and a diff are computed once by the
worker and read back (`app.snapshots.stored`); these are the computations both use."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import LabelClass, Snapshot, SnapshotItem
from app.errors import InvalidInput
from app.images.catalog import library_counts
from app.snapshots import sets
from app.snapshots.health import report
from app.snapshots.looks import confirmer
from app.snapshots.queries import class_names
from app.snapshots.rows import live_rows, snapshot_rows
from app.snapshots.spec import parse_filter
from app.snapshots.splits import SPLITS
from app.taxonomy.queries import MULTI, active_classes, taxonomy_mode

LIVE_FOLDS = 5


def snapshot_health(session: Session, snapshot: Snapshot) -> dict:
    """The health report of a snapshot's frozen labels, with its splits and leakage check."""
    rows = snapshot_rows(session, snapshot)
    if sets.is_multi(session, snapshot):
        sets.with_sets(session, rows, set(class_names(snapshot)))
    return report(rows, class_names(snapshot), folds=snapshot.split["folds"],
                  confirm=confirmer(session, rows.sha256))


def live_health(session: Session, *, folds: int = LIVE_FOLDS) -> dict:
    """The health report of today's labels: what a snapshot with the default filter would hold."""
    everything = parse_filter(session, {})
    if taxonomy_mode(session) == MULTI:  # each image's set within today's classes
        rows = sets.live_sets(session, everything, {c.id for c in active_classes(session)})
    else:
        rows = live_rows(session, everything)
    names = dict(session.execute(select(LabelClass.id, LabelClass.name)).all())
    out = report(rows, names, folds=folds, confirm=confirmer(session, rows.sha256))
    counts = library_counts(session)
    out["library"] = {"images": counts["images"], "labelled": counts["labelled"],
                      "unlabelled": counts["images"] - counts["labelled"], "excluded": counts["excluded"]}
    return out


LIMIT = 1_000  # list entries a diff answers by default (the counts are always exact)
MAX_LIMIT = 100_000
CHUNK = 100_000  # rows read at a time: a 1,000,000-image snapshot never sits in Python objects at once


@dataclass(frozen=True)
class Changes:
    """What changed from one snapshot to another, as arrays in image id order."""

    added: np.ndarray  # image ids only in the new snapshot
    removed: np.ndarray  # image ids only in the old one
    relabelled: np.ndarray  # (n, 3) int64: image, class id in the old, class id in the new
    moved: np.ndarray  # (n, 3) int64: image, split in the old, split in the new (indices into SPLITS)
    unchanged: int
    flipped: bool = False  # relabelled and moved read right to left (a stored diff seen the other way round)
    sets: tuple[tuple[int, ...], ...] | None = None  # multi-label: the "class ids" in relabelled are codes of these

    def mirrored(self) -> Changes:
        """The same changes seen from the new snapshot back to the old one (no copy: stored lists are mapped)."""
        return replace(self, added=self.removed, removed=self.added, flipped=not self.flipped)


def _placement(session: Session, snapshot: Snapshot,
               codebook: dict[tuple[int, ...], int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The snapshot's image ids (sorted), class ids and splits (indices into SPLITS), read in chunks. With a
    `codebook` (multi-label snapshots), each image's set as a code from it (new sets are added to it)."""
    code = {name: i for i, name in enumerate(SPLITS)}
    which = SnapshotItem.class_id if codebook is None else SnapshotItem.label_event_id
    # A statement option: on the connection, stream_results would stay on for every later statement of the
    # session (PostgreSQL's INSERTs through a server-side cursor fail).
    result = session.connection().execute(
        select(SnapshotItem.image_id, which, SnapshotItem.split)
        .where(SnapshotItem.snapshot_id == snapshot.id).order_by(SnapshotItem.image_id)
        .execution_options(stream_results=True))
    ids, classes, splits = [], [], []
    keep = {c["id"] for c in snapshot.classes}
    for part in result.partitions(CHUNK):
        ids.append(np.fromiter((r[0] for r in part), np.int64, len(part)))
        if codebook is None:
            classes.append(np.fromiter((r[1] for r in part), np.int64, len(part)))
        else:
            by_event = sets.event_sets(session, [r[1] for r in part], keep)
            classes.append(np.fromiter((codebook.setdefault(by_event.get(r[1], ()), len(codebook)) for r in part),
                                       np.int64, len(part)))
        splits.append(np.fromiter((code[r[2]] for r in part), np.int64, len(part)))
    empty = np.empty(0, np.int64)
    return tuple(np.concatenate(x) if x else empty for x in (ids, classes, splits))


def changes(session: Session, old: Snapshot, new: Snapshot) -> Changes:
    """Images added, removed, relabelled and moved between splits from `old` to `new` (numpy set operations
    over both snapshots' items: about 1 s of reading at 1,000,000 images, so big pairs are stored once,
    `app.snapshots.stored`)."""
    if old.id == new.id:
        raise InvalidInput("pick two different snapshots to compare")
    multi = sets.is_multi(session, old)
    if multi != sets.is_multi(session, new):
        raise InvalidInput("one of these snapshots holds sets of classes (multi-label) and the other one class per "
                           "image: compare snapshots of the same kind")
    codebook: dict[tuple[int, ...], int] | None = {} if multi else None  # a set's code: the same in both
    ia, ca, sa = _placement(session, old, codebook)
    ib, cb, sb = _placement(session, new, codebook)
    both, xa, xb = np.intersect1d(ia, ib, assume_unique=True, return_indices=True)
    relabel, move = ca[xa] != cb[xb], sa[xa] != sb[xb]
    return Changes(
        added=np.setdiff1d(ib, ia, assume_unique=True), removed=np.setdiff1d(ia, ib, assume_unique=True),
        relabelled=np.stack([both[relabel], ca[xa][relabel], cb[xb][relabel]], axis=1),
        moved=np.stack([both[move], sa[xa][move], sb[xb][move]], axis=1),
        unchanged=int(len(both) - np.count_nonzero(relabel | move)),
        sets=tuple(sorted(codebook, key=codebook.get)) if multi else None,
    )


def check_page(limit: int, offset: int) -> None:
    if not 0 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be between 0 and {MAX_LIMIT:,}, not {limit}")
    if offset < 0:
        raise InvalidInput(f"offset must be 0 or more, not {offset}")


def diff_view(old: Snapshot, new: Snapshot, found: Changes, *, limit: int = LIMIT, offset: int = 0) -> dict:
    """The JSON of a diff: exact counts, and each list from `offset`, at most `limit` entries (in image id order)."""
    check_page(limit, offset)
    names_a, names_b = class_names(old), class_names(new)
    if found.sets is not None:  # a set reads as its names: "red + dress", or "none of these"
        def set_names(names, other):  # a code lists every set of both snapshots
            return {code: " + ".join(names.get(c) or other.get(c, f"#{c}") for c in s) or "none of these"
                    for code, s in enumerate(found.sets)}
        names_a, names_b = set_names(names_a, names_b), set_names(names_b, names_a)
    page = slice(offset, offset + limit)
    def pairs(rows):
        return ((i, b, a) if found.flipped else (i, a, b) for i, a, b in rows[page].tolist())

    return {
        "from": {"id": old.id, "name": old.name, "hash": old.hash},
        "to": {"id": new.id, "name": new.name, "hash": new.hash},
        "counts": {"added": len(found.added), "removed": len(found.removed), "relabelled": len(found.relabelled),
                   "moved": len(found.moved), "unchanged": found.unchanged},
        "added": found.added[page].tolist(), "removed": found.removed[page].tolist(),
        "relabelled": [{"image": i, "from": names_a[a], "to": names_b[b]} for i, a, b in pairs(found.relabelled)],
        "moved": [{"image": i, "from": SPLITS[a], "to": SPLITS[b]} for i, a, b in pairs(found.moved)],
        "limit": limit, "offset": offset,
    }


def diff(session: Session, old: Snapshot, new: Snapshot, *, limit: int = LIMIT, offset: int = 0) -> dict:
    """What changed from `old` to `new`, computed now: images added, removed, relabelled, moved between splits."""
    check_page(limit, offset)
    return diff_view(old, new, changes(session, old, new), limit=limit, offset=offset)
