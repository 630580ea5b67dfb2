"""Suspected mislabels of a finished job, found (reading) and written as flags (kind "mislabel")."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.models import Job, Snapshot
from app.errors import Conflict
from app.quality import mislabels, noise, set_flags
from app.quality.jobprobs import JobProbs, finished_job, job_probs
from app.quality.neighbourhood import job_neighbours
from app.quality.raising import current_state, flags_by_image, raise_or_create
from app.snapshots.sets import is_multi


@dataclass
class Detection:
    """What the mislabel detector says about one job's images (nothing written yet)."""

    data: JobProbs
    issues: np.ndarray  # (N,) bool
    quality: np.ndarray  # (N,) label-quality score, lower = more likely wrong
    suggested: np.ndarray  # (N,) column index of the suggested class
    wrong: np.ndarray  # (N,) probability that the label is wrong
    score: np.ndarray  # (N,) the review order, higher first (app.quality.mislabels.detect)
    noise: dict  # the noise estimate for the quality page (app.quality.noise.summary)
    use_confidence: bool = True
    neighbours: bool = False  # whether out-of-sample neighbours were weighed


def detect_mislabels(session: Session, *, job_id: int, use_confidence: bool = True,
                     settings: Settings | None = None) -> Detection:
    """Find a succeeded job's likely mislabels from its out-of-sample predictions (reads only).

    With `settings`, the job's out-of-sample embeddings (when it kept them) add
    each image's neighbours' labels as evidence (app.quality.neighbourhood).
    """
    job = finished_job(session, job_id)
    data = job_probs(session, job)
    if len(np.unique(data.labels)) < 2 or data.probs.shape[1] < 2:
        raise Conflict(f"job {job_id}'s images cover fewer than two of today's classes; nothing to compare")
    prior = data.confidence if use_confidence else None
    near = None if settings is None else job_neighbours(settings, job, data.image_ids, data.labels, data.folds)
    found = mislabels.detect(data.labels, data.probs, prior=prior, neighbours=near)
    suggested = mislabels.suggested_classes(data.labels, found["posterior"])
    estimate = noise.estimate(session, data, posterior=found["posterior"], neighbours=near is not None)
    return Detection(data, found["issues"], found["quality"], suggested, found["wrong"], found["score"], estimate,
                     use_confidence=use_confidence, neighbours=near is not None)


def flag_mislabels(session: Session, *, job_id: int, use_confidence: bool = True,
                   found: Detection | None = None, settings: Settings | None = None) -> dict:
    """Suspected mislabels of a succeeded job as flags (kind "mislabel"); commits. Returns counts.

    `found`: a detection made beforehand in a read session (see `check_job`), so
    the write lock is held only while flags are written.
    """
    found = found or detect_mislabels(session, job_id=job_id, use_confidence=use_confidence, settings=settings)
    data = found.data
    idx = np.flatnonzero(found.issues)
    current = current_state(session, data.image_ids[idx])
    opened, kept = flags_by_image(session, "mislabel", {int(data.image_ids[i]) for i in idx})
    counts = {"created": 0, "raised": 0, "unchanged": 0, "kept": 0, "changed": 0}
    for i in idx.tolist():
        image_id = int(data.image_ids[i])
        event, class_id, excluded = current.get(image_id, (None, None, True))
        if excluded or class_id != data.class_ids[data.labels[i]]:
            counts["changed"] += 1  # relabelled or excluded since the snapshot: the job judged an old label
            continue
        probs = data.probs[i]
        top = np.argsort(-probs)[:3]
        details = {"job": job_id, "snapshot_event_id": int(data.event_ids[i]), "label_event_id": event,
                   "quality": round(float(found.quality[i]), 6),
                   "wrong": round(float(found.wrong[i]), 6),
                   "neighbours": found.neighbours,
                   "given_prob": round(float(probs[data.labels[i]]), 6),
                   "top": [{"class_id": data.class_ids[k], "prob": round(float(probs[k]), 6)} for k in top],
                   "use_confidence": use_confidence}
        raise_or_create(session, kind="mislabel", image_id=image_id, score=round(float(found.score[i]), 6),
                         suggested=data.class_ids[found.suggested[i]], details=details, current_event=event,
                         opened=opened, kept=kept, counts=counts)
    job = session.get(Job, job_id)
    job.metrics = {**(job.metrics or {}), noise.METRIC: found.noise}
    session.commit()
    return {"job": job_id, "examined": int(len(data.labels)), "issues": int(len(idx)), **counts,
            "estimated_noise": round(found.noise["noise"], 4), "neighbours": found.neighbours}


def check_job(db, *, job_id: int, use_confidence: bool = True, settings: Settings | None = None) -> dict:
    """Detect a job's suspected mislabels reading, then write the flags in a short write transaction. A job on
    a multi-label snapshot is checked per (image, class) (app.quality.set_flags)."""
    with db.reading() as s:
        job = finished_job(s, job_id)
        if is_multi(s, s.get(Snapshot, job.snapshot_id)):
            found_sets = set_flags.detect_set_issues(s, job)
            write = functools.partial(set_flags.flag_set_issues, found=found_sets)
        else:
            found = detect_mislabels(s, job_id=job_id, use_confidence=use_confidence, settings=settings)
            write = functools.partial(flag_mislabels, job_id=job_id, use_confidence=use_confidence, found=found)
    with db.writing() as s:
        return write(s)
