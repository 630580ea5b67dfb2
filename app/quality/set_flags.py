"""Suspected label errors of a multi-label job, per (image, class), written as mislabel flags.

One open flag per image and kind, as for single labels (app.quality.raising):
an image's flag names the class it most suspects (`details.class_id`,
`details.class`) and whether that class is suspected `missing` or `wrong`
(`details.detail`); `details.pairs` lists every suspected class of the image,
most suspect first. `suggested_class_id` is that class; the suggested set
(`details.suggested_set`) is the given set with every suspected pair turned
over, which "relabel" on the review page offers.

The job's classes are followed to today's (merged classes become one column,
its probability the larger of theirs; a split or retired class drops out), as
app.quality.jobprobs does for single labels. A pair is written only if the
image's current set still agrees with the snapshot's on that class: a label
changed since the job was judged by someone already.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from app.db.models import Job, LabelClass, Prediction, Snapshot, SnapshotItem, Source
from app.errors import Conflict
from app.labelling.queries import current_sets
from app.quality import noise
from app.quality.jobprobs import OUT_OF_SAMPLE_ROLES, parse_probs, todays_columns
from app.quality.raising import current_state, flags_by_image, raise_or_create
from app.quality.set_issues import MISSING, WRONG, detect_sets
from app.snapshots.sets import event_sets

METRIC = "set_noise"  # the key in Job.metrics: per class, the estimated missing and wrong shares


@dataclass
class SetDetection:
    job_id: int
    image_ids: np.ndarray  # (N,)
    event_ids: np.ndarray  # (N,) the snapshot's label event
    class_ids: list[int]  # (K,) today's class per column
    given: np.ndarray  # (N, K) bool
    probs: np.ndarray  # (N, K)
    found: dict  # app.quality.set_issues.detect_sets
    estimate: dict  # the quality page's noise section (`estimate`), stored with the flags


def detect_set_issues(session: Session, job: Job) -> SetDetection:
    """Read a multi-label job's out-of-sample sigmoids and its snapshot's sets; find the suspect pairs."""
    frozen, heirs, class_ids, column = todays_columns(session, session.get(Snapshot, job.snapshot_id))
    rows = session.connection().execute(
        select(Prediction.image_id, cast(Prediction.probs, Text), SnapshotItem.label_event_id)
        .join(SnapshotItem, (SnapshotItem.image_id == Prediction.image_id)
              & (SnapshotItem.snapshot_id == job.snapshot_id))
        .where(Prediction.job_id == job.id, Prediction.role.in_(OUT_OF_SAMPLE_ROLES), Prediction.out_of_sample)
        .order_by(Prediction.image_id)).all()
    if not rows:
        raise Conflict(f"job {job.id} has no out-of-sample predictions to check labels with")
    image_ids, texts, events = zip(*rows)
    raw = parse_probs(job, texts, len(frozen))
    probs = np.zeros((len(raw), len(class_ids)))
    for k, today in enumerate(heirs):
        if today is not None:  # merged classes: the image shows the merged class if it shows either
            probs[:, column[today]] = np.maximum(probs[:, column[today]], raw[:, k])
    sets = event_sets(session, list(events), set(frozen))
    heir_of = dict(zip(frozen, heirs))
    given = np.zeros(probs.shape, dtype=bool)
    for row, event in enumerate(events):
        for c in sets.get(event, ()):
            today = heir_of[c]
            if today is not None:
                given[row, column[today]] = True
    found = detect_sets(given, probs)
    ids = np.array(image_ids, dtype=np.int64)
    return SetDetection(job.id, ids, np.array(events, dtype=np.int64), class_ids, given, probs, found,
                        estimate(session, job.id, ids, class_ids, given, found))


def estimate(session: Session, job_id: int, image_ids: np.ndarray, class_ids: list[int], given: np.ndarray,
             found: dict) -> dict:
    """The quality page's noise section for sets, in the single-label shape (app.quality.noise.summary): per
    class `n` images carry it and `noise` is its expected errors (tags missing plus tags wrong) per carried tag,
    with `missing` and `wrong` apart; overall and per source the same over every tag. No confused pairs and
    no joint: a set's errors are per class."""
    wrong = found["wrong"]
    errors = wrong.sum(axis=0)
    carried = given.sum(axis=0)
    per_image = wrong.sum(axis=1)
    codes = noise.source_codes(session, image_ids)
    names = dict(session.execute(select(Source.id, Source.name)).all())
    per_source = []
    for code in np.unique(codes).tolist():
        rows = codes == code
        per_source.append({"source": names.get(code, f"#{code}"), "n": int(given[rows].sum()),
                           "noise": float(per_image[rows].sum() / max(1, given[rows].sum()))})
    return {"job": job_id, "examined": int(len(image_ids)), "neighbours": False, "multi_label": True,
            "informative": bool(found["issues"].any() or wrong.mean() <= 0.5), "pairs": [],
            "noise": float(errors.sum() / max(1, carried.sum())), "per_source": per_source,
            "per_class": [{"class_id": cid, "n": int(carried[k]), "noise": float(errors[k] / max(1, carried[k])),
                           MISSING: float(found["noise"][MISSING][k]), WRONG: float(found["noise"][WRONG][k])}
                          for k, cid in enumerate(class_ids)]}


def flag_set_issues(session: Session, *, found: SetDetection) -> dict:
    """Write `found`'s suspect pairs as one mislabel flag per image; commits. Returns counts."""
    issues = found.found["issues"]
    rows = np.flatnonzero(issues.any(axis=1))
    ids = [int(found.image_ids[r]) for r in rows]
    state = current_state(session, ids)
    now = current_sets(session, ids)
    names = dict(session.execute(
        select(LabelClass.id, LabelClass.name).where(LabelClass.id.in_(found.class_ids))).all())
    opened, kept = flags_by_image(session, "mislabel", set(ids))
    counts = {"created": 0, "raised": 0, "unchanged": 0, "kept": 0, "changed": 0}
    score, wrong = found.found["score"], found.found["wrong"]
    for r, image_id in zip(rows.tolist(), ids):
        event, _, excluded = state.get(image_id, (None, None, True))
        current = now.get(image_id)
        pairs = []
        for k in sorted(np.flatnonzero(issues[r]).tolist(), key=lambda k: -score[r, k]):
            cid = found.class_ids[k]
            if excluded or current is None or (cid in current) != bool(found.given[r, k]):
                continue  # relabelled or excluded since the snapshot: the job judged an old answer
            pairs.append({"class_id": cid, "class": names.get(cid), "detail": WRONG if found.given[r, k] else MISSING,
                          "wrong": round(float(wrong[r, k]), 6), "prob": round(float(found.probs[r, k]), 6),
                          "score": round(float(score[r, k]), 6)})
        if not pairs:
            counts["changed"] += 1
            continue
        turned = {p["class_id"] for p in pairs}
        suggested_set = sorted((set(current) - turned) | {c for c in turned if c not in current})
        top = pairs[0]
        details = {"job": found.job_id, "snapshot_event_id": int(found.event_ids[r]), "label_event_id": event,
                   "multi_label": True, "class_id": top["class_id"], "class": top["class"], "detail": top["detail"],
                   "wrong": top["wrong"], "pairs": pairs, "suggested_set": suggested_set,
                   "given_set": sorted(current)}
        raise_or_create(session, kind="mislabel", image_id=image_id, score=top["score"], suggested=top["class_id"],
                        details=details, current_event=event, opened=opened, kept=kept, counts=counts)
    rates = found.found["noise"]
    job = session.get(Job, found.job_id)
    job.metrics = {**(job.metrics or {}), noise.METRIC: found.estimate, METRIC: [
        {"class_id": cid, "class": names.get(cid), MISSING: round(float(rates[MISSING][k]), 4),
         WRONG: round(float(rates[WRONG][k]), 4)} for k, cid in enumerate(found.class_ids)]}
    session.commit()
    return {"job": found.job_id, "examined": int(issues.size), "pairs": int(issues.sum()), "issues": len(rows),
            **counts}
