"""A big frozen snapshot's health report and the diff between two big snapshots: computed once, read back.

A snapshot never changes, so neither does its health report (every item read,
near-duplicates grouped and confirmed by thumbnails: 1.2 s at 100,000 images)
nor its diff with another snapshot (both snapshots' items: 235 ms at 100,000).
Past `Settings.quality_live_max` items they are computed once by a worker job
of kind "report" (like `app.quality.results`, whose jobs have no snapshot;
these have their snapshot_id set) and every view reads the stored result;
smaller ones are computed per view as before.

- Health: config {"snapshot": S}, queued when S is frozen. Stored in the job's
  metrics (a few KiB whatever the size: per class, per source, 10 leakage
  examples) with a stamp: the time and the newest flag id. The only part of
  it that can change later is "flagged" (open flags today, `app.snapshots.health`),
  so the page says "flags as of <time>, N flag changes on its images since",
  and a refresh queues another job.
- Diff: config {"diff": [A, B]} with A < B (the other direction is the same
  diff mirrored), queued when B is frozen with A the snapshot before it, or on
  request for another pair. Its lists can hold every image of both snapshots,
  so they are .npy files in the job's folder (read by slices: a page of 1,000
  costs the same at any size); the counts are in the metrics.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime

import numpy as np
from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from app.artifacts import artifact_path, job_dir
from app.db.models import Flag, Job, Snapshot, SnapshotItem
from app.errors import InvalidInput
from app.snapshots.queries import get_snapshot
from app.snapshots.reports import Changes, changes, check_page, diff, diff_view, snapshot_health
from app.timeutil import iso, utcnow

KIND = "report"
ACTIVE = ("queued", "running")
DIFF_FILES = {"added": "diff-added.npy", "removed": "diff-removed.npy", "relabelled": "diff-relabelled.npy",
              "moved": "diff-moved.npy"}


def big(settings, *snapshots: Snapshot) -> bool:
    """Whether these are read from a stored result rather than computed per view."""
    return sum(s.count for s in snapshots) > settings.quality_live_max


# Jobs -------------------------------------------------------------------------------------------------------


def _config_health(snapshot: Snapshot) -> dict:
    return {"snapshot": snapshot.id}


def _config_diff(a: Snapshot, b: Snapshot) -> dict:
    lo, hi = sorted((a.id, b.id))
    return {"diff": [lo, hi]}


def _owner(config: dict) -> int:
    """The snapshot a job's snapshot_id names: the one reported on, or a diff's newer one."""
    return config["snapshot"] if "snapshot" in config else config["diff"][1]


def _jobs(session: Session, config: dict, statuses) -> list[int]:
    """Ids of report jobs with this config and one of these statuses, newest first. A snapshot has a few such
    jobs (one per refresh), so the config is compared here rather than in JSON SQL (SQLite and PostgreSQL
    differ there)."""
    rows = session.execute(select(Job.id, Job.config).where(Job.kind == KIND, Job.snapshot_id == _owner(config),
                                                            Job.status.in_(statuses)).order_by(Job.id.desc()))
    return [i for i, c in rows if c == config]


def _queue(session: Session, config: dict, message: str) -> Job:
    """The job already waiting or running for `config`, else a new one; commits."""
    waiting = _jobs(session, config, ACTIVE)
    if waiting:
        return session.get(Job, waiting[0])
    job = Job(kind=KIND, snapshot_id=_owner(config), config=config, status="queued", notes=[], artifacts={},
              message=message)
    session.add(job)
    session.commit()
    return job


def queue_health(session: Session, snapshot: Snapshot) -> Job:
    """A job that computes (again) the snapshot's health report."""
    return _queue(session, _config_health(snapshot), "waiting for a worker: the snapshot's health report")


def queue_diff(session: Session, a: Snapshot, b: Snapshot) -> Job:
    """A job that computes the diff between the two snapshots (either direction)."""
    if a.id == b.id:
        raise InvalidInput("pick two different snapshots to compare")
    return _queue(session, _config_diff(a, b), "waiting for a worker: the diff of two snapshots")


def after_freeze(session: Session, settings, snapshot: Snapshot) -> list[Job]:
    """Queue what a big new snapshot's page will read: its health, and its diff with the snapshot frozen
    before it (the comparison people make first)."""
    queued = []
    if big(settings, snapshot):
        queued.append(queue_health(session, snapshot))
    before = session.scalars(select(Snapshot).where(Snapshot.id < snapshot.id).order_by(Snapshot.id.desc())
                             .limit(1)).first()
    if before is not None and big(settings, before, snapshot):
        queued.append(queue_diff(session, before, snapshot))
    return queued


def _newest(session: Session, config: dict) -> Job | None:
    done = _jobs(session, config, ("succeeded",))
    return session.get(Job, done[0]) if done else None


def _state(session: Session, config: dict, done: Job | None) -> dict:
    """The jobs around a stored result: one under way, and the newest that failed or was cancelled since the
    newest success (`done`)."""
    active = _jobs(session, config, ACTIVE)
    failed = [i for i in _jobs(session, config, ("failed", "cancelled")) if done is None or i > done.id]
    return {"refreshing": active[-1] if active else None, "failed": failed[0] if failed else None}


# Health -----------------------------------------------------------------------------------------------------


def stamp(session: Session) -> dict:
    """When, and the newest flag: what a stored health report's "flagged" counted."""
    return {"at": iso(utcnow()), "flag": session.scalar(select(func.max(Flag.id))) or 0}


def flags_since(session: Session, snapshot: Snapshot, seen: dict) -> int:
    """Flags on the snapshot's images opened, resolved or cancelled after `seen` (a `stamp`). The changed flags
    are few; each is looked up in the snapshot's items by primary key."""
    at = datetime.fromisoformat(seen["at"].rstrip("Z"))
    inside = exists().where(SnapshotItem.snapshot_id == snapshot.id, SnapshotItem.image_id == Flag.image_id)
    return session.scalar(select(func.count()).select_from(Flag)
                          .where((Flag.id > seen["flag"]) | (Flag.resolved_at > at), inside)) or 0


def health_view(session: Session, settings, snapshot: Snapshot) -> dict:
    """{"health", "as_of"}: computed here (as_of None) for a small snapshot; else the stored report (None until
    one is) and as_of {"job", "at", "flags_since", "refreshing", "failed"}."""
    if not big(settings, snapshot):
        return {"health": snapshot_health(session, snapshot), "as_of": None}
    config = _config_health(snapshot)
    job = _newest(session, config)
    state = _state(session, config, job)
    if job is None:
        return {"health": None, "as_of": {"job": None, "at": None, "flags_since": None, **state}}
    seen = job.metrics["stamp"]
    return {"health": job.metrics["health"],
            "as_of": {"job": job.id, "at": seen["at"], "flags_since": flags_since(session, snapshot, seen), **state}}


# Diff -------------------------------------------------------------------------------------------------------


def _stored_changes(settings, job: Job) -> Changes:
    """The diff's lists, memory-mapped: a page reads only its slice."""
    def load(name):
        return np.load(artifact_path(settings, job, name), mmap_mode="r")

    stored_sets = job.metrics.get("sets")
    return Changes(load("added"), load("removed"), load("relabelled"), load("moved"),
                   job.metrics["counts"]["unchanged"],
                   sets=None if stored_sets is None else tuple(tuple(s) for s in stored_sets))


def diff_state(session: Session, settings, old: Snapshot, new: Snapshot, *, limit: int, offset: int) -> dict:
    """{"diff", "job", "pending"}: computed here for small snapshots (job None); else read from the stored
    diff's files, one page of each list (diff None until one is stored; pending: the job under way, failed:
    the newest failed one)."""
    check_page(limit, offset)
    if not big(settings, old, new):
        return {"diff": diff(session, old, new, limit=limit, offset=offset), "job": None}
    config = _config_diff(old, new)
    job = _newest(session, config)
    if job is None:
        if old.id == new.id:
            diff(session, old, new)  # the same refusal as a small pair's
        return {"diff": None, "job": None, **_state(session, config, None)}
    found = _stored_changes(settings, job)
    if old.id > new.id:
        found = found.mirrored()
    return {"diff": {**diff_view(old, new, found, limit=limit, offset=offset), "job": job.id}, "job": job.id}


# The worker's side ------------------------------------------------------------------------------------------


def _compact_sets(found: Changes) -> Changes:
    """Sets of classes (multi-label): only the sets the relabelled rows name, numbered afresh, so the stored
    code book (in the job's metrics) stays as small as the changes, not every set of both snapshots."""
    if found.sets is None:
        return found
    used, codes = np.unique(found.relabelled[:, 1:], return_inverse=True)
    relabelled = found.relabelled.copy()
    relabelled[:, 1:] = codes.reshape(-1, 2)
    return replace(found, relabelled=relabelled, sets=tuple(found.sets[int(c)] for c in used))


def run_job(db, settings, job_id: int, worker: str, hooks) -> dict:
    """Compute the job's health report or diff and store it (metrics; a diff's lists as files)."""
    with db.reading() as s:
        config = s.get(Job, job_id).config
    start = time.perf_counter()
    if "snapshot" in config:
        hooks.progress(0.05, "reading the snapshot's items")
        with db.reading() as s:
            snapshot = get_snapshot(s, config["snapshot"])
            seen = stamp(s)  # first: a flag changed while this runs counts as "since"
            health = snapshot_health(s, snapshot)
        took = time.perf_counter() - start
        return {"metrics": {"stamp": seen, "health": health, "seconds": round(took, 2)}, "artifacts": {},
                "message": f"done: the health of snapshot #{snapshot.id} ({snapshot.count:,} images) in {took:.1f} s"}
    lo, hi = config["diff"]
    hooks.progress(0.05, "reading both snapshots' items")
    with db.reading() as s:
        a, b = get_snapshot(s, lo), get_snapshot(s, hi)
        found = _compact_sets(changes(s, a, b))
    folder = job_dir(settings, job_id)
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, file in DIFF_FILES.items():
        np.save(folder / file, np.ascontiguousarray(getattr(found, name)))
        files[name] = str(folder / file)
    took = time.perf_counter() - start
    counts = {"added": len(found.added), "removed": len(found.removed), "relabelled": len(found.relabelled),
              "moved": len(found.moved), "unchanged": found.unchanged}
    kept = None if found.sets is None else [list(s) for s in found.sets]
    return {"metrics": {"counts": counts, "seconds": round(took, 2), "sets": kept}, "artifacts": files,
            "message": f"done: snapshot #{lo} to #{hi}: +{counts['added']:,} −{counts['removed']:,}, "
                       f"{counts['relabelled']:,} relabelled, {counts['moved']:,} moved in {took:.1f} s"}
