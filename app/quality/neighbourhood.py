"""The out-of-sample neighbours a train job's mislabel detection weighs (app.quality.mislabels, `neighbours`).

Each labelled image's nearest images in the job's oof-embeddings.npy (the fold
model that never saw the image), looked for among the same fold's images only:
the fold model saw none of their labels either, and fold spaces do not line
up (app.embeddings.neighbours). Their labels are a second witness beside the
model's probabilities: on look-alike noise the model often learns the wrong
label of a whole pair, while the images around a mislabelled one still carry
its true class.

The analyse job finds the same neighbours again for the review page's
evidence; this copy is the detector's own, so flags never wait for an analysis.
"""

from __future__ import annotations

import logging

import numpy as np

from app.config import Settings
from app.db.models import Job
from app.embeddings import files, knn, similar
from app.embeddings import neighbours as neighbour_labels

log = logging.getLogger("loupe.quality")


def job_neighbours(settings: Settings, job: Job, image_ids: np.ndarray, labels: np.ndarray,
                   folds: np.ndarray) -> np.ndarray | None:
    """int64 (N, K): row indices into `image_ids` of each row's out-of-sample neighbours, -1 for none; None when
    the job kept no out-of-sample embeddings (older jobs) or they cannot be read (logged)."""
    if not (job.artifacts or {}).get("oof_embeddings"):
        return None
    try:
        ids, rows = files.load(*similar.local_files(settings, job, prefix="oof_"))
    except Exception:  # noqa: BLE001 - the probabilities alone still give flags
        log.exception("job %s: out-of-sample embeddings unreadable; mislabels from probabilities alone", job.id)
        return None
    return neighbour_rows(image_ids, ids, rows, labels, folds)


def neighbour_rows(image_ids: np.ndarray, embedding_ids: np.ndarray, embeddings: np.ndarray, labels: np.ndarray,
                   folds: np.ndarray) -> np.ndarray:
    """int64 (N, K): for each of `image_ids` (sorted), the row indices of its nearest out-of-sample neighbours
    among the rows of the same fold, -1 for none. `embedding_ids` (sorted) / `embeddings`: the out-of-sample
    vectors (memory-mapped is fine); an image without one gets no neighbours and is no one's neighbour."""
    image_ids = np.asarray(image_ids, dtype=np.int64)
    out = np.full((len(image_ids), knn.K), -1, dtype=np.int64)
    if not len(embedding_ids):
        return out
    at = np.minimum(np.searchsorted(embedding_ids, image_ids), len(embedding_ids) - 1)
    members = np.flatnonzero(embedding_ids[at] == image_ids)
    if len(members) < 2:
        return out
    unit = similar.normalise(embeddings[at[members]])
    _, found = neighbour_labels.out_of_sample(image_ids[members], unit, np.asarray(labels)[members],
                                              np.asarray(folds)[members])
    valid = found >= 0
    out[members, :found.shape[1]] = np.where(valid, np.searchsorted(image_ids, np.where(valid, found, 0)), -1)
    return out
