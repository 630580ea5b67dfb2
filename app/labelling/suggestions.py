"""The latest model's opinion on the labelling page: top-3 suggestions and "most uncertain first".

Reads predictions the worker wrote; no torch here. A prediction's class index
maps to the class id frozen in the job's snapshot, followed through merges to
the class in use today.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Job, LabelClass, Prediction, Snapshot

TOP = 3


def latest_job(session: Session) -> Job | None:
    """The newest succeeded training job."""
    return session.scalars(
        select(Job).where(Job.status == "succeeded", Job.kind == "train").order_by(Job.id.desc()).limit(1)
    ).first()


def _active(session: Session, class_id: int) -> LabelClass | None:
    cls, seen = session.get(LabelClass, class_id), set()
    while cls is not None and cls.retired_version_id is not None and cls.id not in seen:
        seen.add(cls.id)
        cls = session.get(LabelClass, cls.replaced_by_id) if cls.replaced_by_id else None
    return cls


def suggestions(session: Session, image_id: int, job: Job | None = None) -> list[dict]:
    """Up to three {"class_id", "name", "prob"} from the latest model, best first; [] when it has none."""
    job = job or latest_job(session)
    if job is None:
        return []
    pred = session.get(Prediction, (job.id, image_id))
    if pred is None:
        return []
    frozen = session.get(Snapshot, job.snapshot_id).classes
    merged: dict[int, dict] = {}
    for k, p in enumerate(pred.probs):
        cls = _active(session, frozen[k]["id"]) if k < len(frozen) else None
        if cls is not None:  # a class split or retired since has no single heir: its share is dropped
            entry = merged.setdefault(cls.id, {"class_id": cls.id, "name": cls.name, "prob": 0.0})
            entry["prob"] += p
    return sorted(merged.values(), key=lambda e: -e["prob"])[:TOP]
