"""Health reports for a snapshot and for the live dataset, and the diff between two snapshots."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import LabelClass, Snapshot, SnapshotItem
from app.errors import InvalidInput
from app.images.catalog import library_counts
from app.snapshots.health import report
from app.snapshots.looks import confirmer
from app.snapshots.queries import class_names
from app.snapshots.rows import live_rows, snapshot_rows
from app.snapshots.spec import parse_filter

LIVE_FOLDS = 5


def snapshot_health(session: Session, snapshot: Snapshot) -> dict:
    """The health report of a snapshot's frozen labels, with its splits and leakage check."""
    rows = snapshot_rows(session, snapshot)
    return report(rows, class_names(snapshot), folds=snapshot.split["folds"],
                  confirm=confirmer(session, [r.sha256 for r in rows]))


def live_health(session: Session, *, folds: int = LIVE_FOLDS) -> dict:
    """The health report of today's labels: what a snapshot with the default filter would hold."""
    rows = live_rows(session, parse_filter(session, {}))
    names = dict(session.execute(select(LabelClass.id, LabelClass.name)).all())
    out = report(rows, names, folds=folds, confirm=confirmer(session, [r.sha256 for r in rows]))
    counts = library_counts(session)
    out["library"] = {"images": counts["images"], "labelled": counts["labelled"],
                      "unlabelled": counts["images"] - counts["labelled"], "excluded": counts["excluded"]}
    return out


def _placement(session: Session, snapshot: Snapshot) -> dict[int, tuple[int, str]]:
    rows = session.execute(
        select(SnapshotItem.image_id, SnapshotItem.class_id, SnapshotItem.split)
        .where(SnapshotItem.snapshot_id == snapshot.id)
    )
    return {i: (c, s) for i, c, s in rows}


def diff(session: Session, old: Snapshot, new: Snapshot) -> dict:
    """What changed from `old` to `new`: images added, removed, relabelled, moved between splits."""
    if old.id == new.id:
        raise InvalidInput("pick two different snapshots to compare")
    a, b = _placement(session, old), _placement(session, new)
    names_a, names_b = class_names(old), class_names(new)
    both = sorted(a.keys() & b.keys())
    relabelled = [{"image": i, "from": names_a[a[i][0]], "to": names_b[b[i][0]]} for i in both if a[i][0] != b[i][0]]
    moved = [{"image": i, "from": a[i][1], "to": b[i][1]} for i in both if a[i][1] != b[i][1]]
    added, removed = sorted(b.keys() - a.keys()), sorted(a.keys() - b.keys())
    return {
        "from": {"id": old.id, "name": old.name, "hash": old.hash},
        "to": {"id": new.id, "name": new.name, "hash": new.hash},
        "counts": {"added": len(added), "removed": len(removed), "relabelled": len(relabelled), "moved": len(moved),
                   "unchanged": len(both) - len({x["image"] for x in relabelled + moved})},
        "added": added, "removed": removed, "relabelled": relabelled, "moved": moved,
    }
