"""A finished job's out-of-sample probabilities, over the classes in use today.

A job's probabilities are indexed by the classes its snapshot froze. Before
anything is compared with today's labels, each frozen class is followed
through merges to the class in use now (probabilities of merged classes add
up); a class split or retired since has no single heir, so its column and its
images drop out (those images wait in re-review anyway).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from app.db.models import Job, LabelEvent, Prediction, Snapshot, SnapshotItem
from app.errors import Conflict, NotFound
from app.labelling.heirs import heir

OUT_OF_SAMPLE_ROLES = ("oof", "holdout")


@dataclass
class JobProbs:
    """A job's out-of-sample probabilities over today's active classes, one row per snapshot image."""

    job_id: int
    image_ids: np.ndarray  # (N,)
    labels: np.ndarray  # (N,) index into class_ids: the snapshot's label, followed to its heir
    probs: np.ndarray  # (N, K)
    confidence: np.ndarray  # (N,) annotator confidence of the snapshot's label event (NaN unknown)
    folds: np.ndarray  # (N,)
    event_ids: np.ndarray  # (N,) the snapshot's label event
    class_ids: list[int] = field(default_factory=list)  # (K,) active class id per column


def active_class(session: Session, class_id: int, cache: dict | None = None) -> int | None:
    """The class in use today that `class_id` became (itself, or its merge heir); None after a split or retire."""
    cls = heir(session, class_id, {} if cache is None else cache)
    return cls.id if cls is not None else None


def finished_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    if job.status != "succeeded":
        raise Conflict(f"job {job_id} is {job.status}; only a succeeded job's predictions can be checked")
    return job


def todays_columns(session: Session, snapshot: Snapshot) -> tuple[list[int], list[int | None], list[int], dict]:
    """(the snapshot's frozen class ids, the class each became today (None: split or retired since), today's
    classes in column order, {today's class id: its column})."""
    frozen = [c["id"] for c in snapshot.classes]
    cache: dict = {}
    heirs = [active_class(session, cid, cache) for cid in frozen]
    class_ids = sorted({h for h in heirs if h is not None}, key=heirs.index)
    return frozen, heirs, class_ids, {cid: k for k, cid in enumerate(class_ids)}


def parse_probs(job: Job, texts, classes: int) -> np.ndarray:
    """The stored probability lists (JSON text) as one (N, classes) array; Conflict when they do not fit."""
    raw = np.array(json.loads("[" + ",".join(texts) + "]"), dtype=np.float64)
    if raw.ndim != 2 or raw.shape[1] != classes:
        raise Conflict(f"job {job.id}'s predictions do not match its snapshot's {classes} classes")
    return raw


def job_probs(session: Session, job: Job) -> JobProbs:
    """The job's out-of-sample predictions for its snapshot's images, mapped to today's classes.

    Raises Conflict when the job wrote no out-of-sample predictions.
    """
    frozen, heirs, class_ids, column = todays_columns(session, session.get(Snapshot, job.snapshot_id))
    cache: dict = {}
    rows = session.connection().execute(
        select(Prediction.image_id, cast(Prediction.probs, Text), SnapshotItem.class_id, SnapshotItem.fold,
               SnapshotItem.label_event_id, LabelEvent.confidence)
        .join(SnapshotItem, (SnapshotItem.image_id == Prediction.image_id)
              & (SnapshotItem.snapshot_id == job.snapshot_id))
        .join(LabelEvent, LabelEvent.id == SnapshotItem.label_event_id)
        .where(Prediction.job_id == job.id, Prediction.role.in_(OUT_OF_SAMPLE_ROLES), Prediction.out_of_sample)
        .order_by(Prediction.image_id)
    ).all()
    if not rows:
        raise Conflict(f"job {job.id} has no out-of-sample predictions to check labels with")
    image_ids, texts, given, folds, events, confidence = zip(*rows)
    raw = parse_probs(job, texts, len(frozen))
    merge = np.zeros((len(frozen), len(class_ids)))
    for k, today in enumerate(heirs):
        if today is not None:
            merge[k, column[today]] = 1.0
    probs = raw @ merge
    given = np.array(given, dtype=np.int64)
    distinct = np.unique(given)
    to_column = np.array([column.get(active_class(session, int(c), cache), -1) for c in distinct], dtype=np.int64)
    labels = to_column[np.searchsorted(distinct, given)]
    keep = (labels >= 0) & (probs.sum(axis=1) > 0)
    probs = probs[keep] / probs[keep].sum(axis=1, keepdims=True)
    conf = np.array([np.nan if c is None else c for c in confidence], dtype=np.float64)
    return JobProbs(job.id, np.array(image_ids, dtype=np.int64)[keep], labels[keep], probs, conf[keep],
                    np.array(folds, dtype=np.int64)[keep], np.array(events, dtype=np.int64)[keep], class_ids)
