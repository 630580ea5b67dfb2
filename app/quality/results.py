"""Whole-dataset quality analyses as stored results: the duplicate report and the live health report.

Both read every live image (1,000,000 of them take about 10 s), so past
`Settings.quality_live_max` images the quality page stops computing them per
view: a worker job of kind "report" computes them and stores them in its
metrics with an "as of" stamp (the time, and the newest label event, image and
exclusion it saw). The page reads the newest such result and says how much has
changed since ("as of 3 min ago, 214 labels since"), so a stale number is never
shown as current; "Refresh" queues another report job. Smaller datasets keep
getting live numbers, marked current.
"""

from __future__ import annotations

import json
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.asof import changes_since, stamp
from app.db.models import Job
from app.images.catalog import library_counts

KIND = "report"
PARTS = ("duplicates", "health")
ACTIVE = ("queued", "running")


def _live(session: Session, parts) -> dict:
    from app.quality.report import duplicate_report
    from app.snapshots.reports import live_health

    work = {"duplicates": duplicate_report, "health": live_health}
    return {part: work[part](session) for part in parts}


def compute(session: Session) -> dict:
    """The duplicate report and the live health report, as JSON-safe data."""
    return json.loads(json.dumps(_live(session, PARTS), default=_plain))


def _plain(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON")


def live(session: Session, settings) -> bool:
    """Whether the page computes these itself: the dataset is small enough for it to answer at once."""
    return library_counts(session)["images"] <= settings.quality_live_max


def latest(session: Session) -> dict | None:
    """The newest stored result: {"job", "stamp", "since", "duplicates", "health", "refreshing"}, or None."""
    job = session.scalars(select(Job).where(Job.kind == KIND, Job.status == "succeeded", Job.snapshot_id.is_(None))
                          .order_by(Job.id.desc()).limit(1)).first()
    if job is None or "report" not in (job.metrics or {}):
        return None
    seen = job.metrics["stamp"]
    return {"job": job.id, "stamp": seen, "since": changes_since(session, seen), **job.metrics["report"],
            "refreshing": refreshing(session)}


def view(session: Session, settings, parts=PARTS) -> dict:
    """What a page shows of `parts` ("duplicates", "health") and `as_of`: computed here (as_of None) when the
    dataset is small; else the newest stored report's, and {"job", "at", "since", "refreshing"} (the parts
    None until a report is stored)."""
    if live(session, settings):
        return {**_live(session, parts), "as_of": None}
    stored = latest(session)
    return {**{part: stored[part] if stored else None for part in parts}, "as_of": as_of(session, stored)}


def as_of(session: Session, stored: dict | None) -> dict:
    """What a page says about a stored result (`latest`'s): its job, time, the changes since, a refresh under way."""
    if stored is None:
        return {"job": None, "at": None, "since": None, "refreshing": refreshing(session)}
    return {"job": stored["job"], "at": stored["stamp"]["at"], "since": stored["since"],
            "refreshing": stored["refreshing"]}


def refreshing(session: Session) -> int | None:
    """The id of a report job queued or running, if any (a snapshot's report jobs, app.snapshots.stored, have their
    snapshot_id set and are not this one)."""
    return session.scalars(select(Job.id).where(Job.kind == KIND, Job.status.in_(ACTIVE), Job.snapshot_id.is_(None))
                           .order_by(Job.id).limit(1)).first()


def queue(session: Session) -> Job:
    """A report job to refresh the stored result: the one already waiting or running, else a new one."""
    waiting = refreshing(session)
    if waiting is not None:
        return session.get(Job, waiting)
    job = Job(kind=KIND, snapshot_id=None, config={}, status="queued", notes=[], artifacts={},
              message="waiting for a worker")
    session.add(job)
    session.commit()
    return job


def run_job(db, settings, job_id: int, worker: str, hooks) -> dict:
    """The worker's side: stamp first (what changes while it runs counts as "since"), then compute."""
    start = time.perf_counter()
    hooks.progress(0.05, "reading every image")
    with db.reading() as s:
        seen = stamp(s)
        report = compute(s)
    took = time.perf_counter() - start
    hooks.progress(0.95, "storing")
    return {"metrics": {"stamp": seen, "report": report, "seconds": round(took, 2)}, "artifacts": {},
            "message": f"done: {(report['health'] or {}).get('total', 0):,} labelled images checked in {took:.1f} s"}
