"""Out-of-sample accuracy per source, one point per snapshot: whether the gap between sources closes.

Reads what each train job measured (job.metrics["per_source"]: each labelled image scored by the fold
model that did not train on it, a held-out source by the final model; app.training.evaluate), nothing
recomputed. One job per snapshot, the newest that succeeded on it; snapshots in the order they were
frozen, the last TREND_MAX of them.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.models import Job, Snapshot
from app.timeutil import iso

TREND_MAX = 24  # snapshots shown: a chart of more points than this reads as a smear, and the table grows long


def source_trend(session: Session, *, most: int = TREND_MAX) -> dict:
    """`{"sources": [name, ...], "points": [{"snapshot", "snapshot_name", "images", "job", "finished_at",
    "accuracy": {source: 0..1}, "gap"}]}`, oldest snapshot first.

    `sources`: every source measured in any point, the weakest in the newest point first (those it did not
    measure last, by name). `gap`: the best source's accuracy minus the worst's at that snapshot (None with
    fewer than two sources measured).
    """
    newest = (select(func.max(Job.id).label("job"))
              .where(Job.kind == "train", Job.status == "succeeded", Job.snapshot_id.is_not(None))
              .group_by(Job.snapshot_id).subquery())
    rows = session.execute(
        select(Job.id, Job.metrics, Job.finished_at, Snapshot.id, Snapshot.name, Snapshot.count)
        .join(newest, newest.c.job == Job.id).join(Snapshot, Snapshot.id == Job.snapshot_id)
        .order_by(Snapshot.id.desc()).limit(most)).all()
    points = []
    for job_id, metrics, finished_at, snapshot_id, name, count in reversed(rows):
        accuracy = {s: float(a) for s, a in ((metrics or {}).get("per_source") or {}).items()}
        points.append({"snapshot": snapshot_id, "snapshot_name": name, "images": count, "job": job_id,
                       "finished_at": iso(finished_at), "accuracy": accuracy,
                       "gap": max(accuracy.values()) - min(accuracy.values()) if len(accuracy) > 1 else None})
    last = points[-1]["accuracy"] if points else {}
    names = {s for p in points for s in p["accuracy"]}
    sources = sorted(names, key=lambda s: (s not in last, last.get(s, 0.0), s))
    return {"sources": sources, "points": points}
