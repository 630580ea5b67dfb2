"""A job's label-noise estimate as the quality page shows it: overall, per class, per source, confused pairs.

Written once, when the worker checks a finished train job's labels (with the
neighbour evidence the flags use), into the job's ``metrics["label_noise"]``;
the quality page reads it from there instead of recomputing it on a view. The
numbers are means of each label's probability of being wrong
(app.quality.mislabels.noise_structure), so the per-class and per-source
estimates add up to the overall one.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Image, Source
from app.quality import mislabels

CONFUSED_PAIRS = 6
METRIC = "label_noise"  # the key in Job.metrics


def source_codes(session: Session, image_ids: np.ndarray) -> np.ndarray:
    """The source id of each image (image_ids sorted)."""
    codes = np.full(len(image_ids), -1, dtype=np.int64)
    ids = [int(i) for i in image_ids]
    for start in range(0, len(ids), 5000):
        rows = session.execute(select(Image.id, Image.source_id).where(Image.id.in_(ids[start:start + 5000]))).all()
        if rows:
            found, sources = (np.array(c, dtype=np.int64) for c in zip(*rows))
            codes[np.searchsorted(image_ids, found)] = sources
    return codes


def estimate(session: Session, data, *, prior=None, posterior=None, neighbours: bool = False) -> dict:
    """`summary` of a job's out-of-sample predictions (app.quality.jobprobs.JobProbs): from `posterior` (the
    detection's) when given, else fitted here with the annotator `prior`; `neighbours`: whether they were weighed."""
    structure = mislabels.noise_structure(data.labels, data.probs, prior=prior, posterior=posterior,
                                          groups={"source": source_codes(session, data.image_ids)})
    return summary(session, data.job_id, data.class_ids, data.labels, structure, neighbours)


def summary(session: Session, job_id: int, class_ids: list[int], labels: np.ndarray, structure: dict,
            neighbours: bool = False) -> dict:
    """The quality page's noise section from `mislabels.noise_structure(..., groups={"source": codes})`.

    Keeps the expected (given, true) counts too, so that a later merge can be followed without the job's
    images (`in_todays_classes`)."""
    names = dict(session.execute(select(Source.id, Source.name)).all())
    joint = np.asarray(structure["joint"], dtype=np.float64)
    out = {"job": job_id, "examined": int(len(labels)), "neighbours": neighbours,
           "informative": structure["informative"],
           "per_source": [{"source": names.get(k, f"#{k}"), **v} for k, v in structure.get("source", {}).items()],
           "class_ids": list(class_ids), "joint": np.round(joint, 3).tolist()}
    return {**out, **_from_joint(list(class_ids), joint)}


def _from_joint(class_ids: list[int], joint: np.ndarray) -> dict:
    """Overall and per-class noise and the most confused pairs from expected (given i, true j) counts."""
    rows = joint.sum(axis=1)
    wrong = rows - np.diagonal(joint)
    pairs = []
    for i in range(len(class_ids)):
        for j in range(i + 1, len(class_ids)):
            n = float(joint[i, j] + joint[j, i])
            if n >= 0.5:
                pairs.append({"a": class_ids[i], "b": class_ids[j], "count": round(n),
                              "a_as_b": round(float(joint[i, j])), "b_as_a": round(float(joint[j, i])),
                              "share": n / max(1.0, float(rows[i] + rows[j]))})
    pairs.sort(key=lambda p: -p["count"])
    return {"noise": float(wrong.sum() / rows.sum()) if rows.sum() else 0.0,
            "per_class": [{"class_id": cid, "n": int(round(rows[c])), "noise": float(wrong[c] / rows[c]) if rows[c]
                           else 0.0} for c, cid in enumerate(class_ids)],
            "pairs": pairs[:CONFUSED_PAIRS]}


def in_todays_classes(stored: dict, heir) -> dict:
    """A stored summary with its classes followed to today's (`heir(class_id)`: the class it became): merged
    classes add up, and their confusions with each other stop counting as noise. `changed` says whether any
    class moved; per-source numbers stay as the job saw them."""
    ids = stored.get("class_ids")
    if ids is None:  # stored before the joint was kept: nothing to follow with
        return {**stored, "changed": False}
    today = [heir(c) for c in ids]
    if today == ids:
        return {**stored, "changed": False}
    order = list(dict.fromkeys(today))
    to = np.zeros((len(ids), len(order)))
    to[np.arange(len(ids)), [order.index(t) for t in today]] = 1.0
    joint = to.T @ np.asarray(stored["joint"], dtype=np.float64) @ to
    return {**stored, **_from_joint(order, joint), "changed": True}
