"""Where one image stands elsewhere: its open flags and the snapshots that hold it (the image page)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Flag, LabelClass, Snapshot, SnapshotItem
from app.timeutil import iso


def open_flags(session: Session, image_id: int) -> list[dict]:
    """Open (and pending audit) flags of the image, highest score first."""
    rows = session.execute(
        select(Flag, LabelClass.name).outerjoin(LabelClass, LabelClass.id == Flag.suggested_class_id)
        .where(Flag.image_id == image_id, Flag.status.in_(("open", "pending"))).order_by(Flag.id)).all()
    flags = [{"id": f.id, "kind": f.kind, "score": f.score, "status": f.status, "suggested": name,
              "created_at": iso(f.created_at)} for f, name in rows]
    return sorted(flags, key=lambda f: -(f["score"] or 0))


def snapshots_of(session: Session, image_id: int) -> list[dict]:
    """Each snapshot holding the image, newest first, with its split and fold there and the class it had."""
    rows = session.execute(
        select(Snapshot.id, Snapshot.name, Snapshot.created_at, SnapshotItem.split, SnapshotItem.fold,
               SnapshotItem.class_id, Snapshot.classes)
        .join(SnapshotItem, SnapshotItem.snapshot_id == Snapshot.id)
        .where(SnapshotItem.image_id == image_id).order_by(Snapshot.id.desc())).all()
    out = []
    for sid, name, created, split, fold, class_id, classes in rows:
        frozen = {c["id"]: c["name"] for c in classes or []}  # the class as named when frozen
        out.append({"id": sid, "name": name, "created_at": iso(created), "split": split, "fold": fold,
                    "class": frozen.get(class_id)})
    return out
