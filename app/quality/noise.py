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


def summary(session: Session, job_id: int, class_ids: list[int], labels: np.ndarray, structure: dict,
            neighbours: bool = False) -> dict:
    """The quality page's noise section from `mislabels.noise_structure(..., groups={"source": codes})`."""
    names = dict(session.execute(select(Source.id, Source.name)).all())
    counts = np.bincount(labels, minlength=len(class_ids))
    joint = structure["joint"]
    pairs = []
    for i in range(len(class_ids)):
        for j in range(i + 1, len(class_ids)):
            n = float(joint[i, j] + joint[j, i])
            if n >= 0.5:
                pairs.append({"a": class_ids[i], "b": class_ids[j], "count": round(n),
                              "a_as_b": round(float(joint[i, j])), "b_as_a": round(float(joint[j, i])),
                              "share": n / max(1, counts[i] + counts[j])})
    pairs.sort(key=lambda p: -p["count"])
    per_class = structure["per_class"]
    return {
        "job": job_id, "examined": int(len(labels)), "noise": structure["noise"], "neighbours": neighbours,
        "informative": structure["informative"],
        "per_class": [{"class_id": cid, "n": int(counts[c]), "noise": per_class.get(c, {"noise": 0.0})["noise"]}
                      for c, cid in enumerate(class_ids)],
        "per_source": [{"source": names.get(k, f"#{k}"), **v} for k, v in structure.get("source", {}).items()],
        "pairs": pairs[:CONFUSED_PAIRS],
    }
