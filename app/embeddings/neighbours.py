"""Neighbour evidence for a label: the share of an image's nearest neighbours that carry the same label.

Out of sample, so that a model that learnt a wrong label cannot vouch for it:
  - a train space: oof-embeddings.npy, each labelled image through the fold
    model that never saw it. Fold models' spaces do not line up (app.embeddings.files),
    so an image's neighbours are looked for among the labelled images of its
    own fold (the snapshot's fold column): model f saw none of their labels.
  - an embed space (a pretrained backbone, which never saw any label): the space itself,
    neighbours among every labelled image.
Labels are the current ones at analysis time; excluded images neither get a
share nor count as neighbours. NaN: no label, or no out-of-sample row (labelled
after the model trained).

`share` is a plain function over arrays for the mislabel detector (issue 15);
`evidence` reads one image's neighbours for the review page.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.models import CurrentLabel, LabelClass
from app.embeddings import analyses, knn

NEIGHBOURS = "share_neighbours"  # the analysis file naming each image's out-of-sample neighbours (image ids)


def share(labels: np.ndarray, neighbours: np.ndarray) -> np.ndarray:
    """float32 (n,): per row, the share of its neighbours (row indices into `labels`, -1 = none) whose label
    equals the row's own; NaN where the row has no label (label < 0) or no neighbour."""
    labels = np.asarray(labels, dtype=np.int64)
    neighbours = np.asarray(neighbours, dtype=np.int64)
    if neighbours.ndim != 2 or len(neighbours) != len(labels):
        raise ValueError(f"neighbours {neighbours.shape} do not match {len(labels)} labels")
    valid = neighbours >= 0
    theirs = np.where(valid, labels[np.where(valid, neighbours, 0)], -2)
    agree = ((theirs == labels[:, None]) & valid).sum(axis=1)
    count = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where((labels >= 0) & (count > 0), agree / np.maximum(count, 1), np.nan)
    return out.astype(np.float32)


def out_of_sample(ids: np.ndarray, unit: np.ndarray, labels: np.ndarray, groups: np.ndarray | None,
                  k: int = knn.K, progress: Callable[[float], None] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(share float32 (n,), neighbour image ids int64 (n, k), -1 padded) over out-of-sample rows.

    `ids`/`unit`: the out-of-sample rows (unit vectors); `labels` int (n,): current class id, -1 for none or
    excluded; `groups` int (n,): the fold of each row (rows are compared within one fold only), or None when
    every row is comparable with every other. Only labelled rows are neighbours.
    """
    n = len(ids)
    found = np.full((n, k), -1, dtype=np.int64)
    groups = np.zeros(n, dtype=np.int64) if groups is None else np.asarray(groups, dtype=np.int64)
    labelled = labels >= 0
    names = np.unique(groups[labelled])
    for i, g in enumerate(names):
        members = np.flatnonzero(labelled & (groups == g))
        rows, _, _ = knn.graph(unit[members], k)
        local = np.where(rows >= 0, members[np.maximum(rows, 0)], -1)
        found[members, :local.shape[1]] = local
        if progress is not None:
            progress((i + 1) / len(names))
    shares = share(labels, found)
    return shares, np.where(found >= 0, np.asarray(ids, dtype=np.int64)[np.maximum(found, 0)], -1)


def evidence(session: Session, settings: Settings, image_id: int) -> dict | None:
    """{"share", "k", "agree", "classes": {name: count}, "analysis", "space", "neighbours": [ids]} for a
    labelled image from the newest analysis that has out-of-sample neighbours for it; None when there is none
    or the image has no label. Counts read today's labels of the neighbours the analysis found."""
    analysis = analyses.latest(session, settings)
    if analysis is None or not analysis.has(NEIGHBOURS):
        return None
    row = analysis.row(image_id)
    current = session.get(CurrentLabel, image_id)
    if row is None or current is None or current.class_id is None:
        return None
    neighbour_ids = [int(i) for i in np.asarray(analysis.array(NEIGHBOURS)[row]) if i >= 0]
    if not neighbour_ids:
        return None
    rows = session.execute(select(CurrentLabel.image_id, CurrentLabel.class_id, LabelClass.name)
                           .join(LabelClass, LabelClass.id == CurrentLabel.class_id)
                           .where(CurrentLabel.image_id.in_(neighbour_ids))).all()
    by_image = {i: (c, name) for i, c, name in rows}
    counts = Counter(by_image[i][1] for i in neighbour_ids if i in by_image)
    agree = sum(1 for i in neighbour_ids if i in by_image and by_image[i][0] == current.class_id)
    k = len(neighbour_ids)
    return {"share": round(agree / k, 4), "k": k, "agree": agree,
            "classes": dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
            "analysis": analysis.job, "space": analysis.space, "neighbours": neighbour_ids}
