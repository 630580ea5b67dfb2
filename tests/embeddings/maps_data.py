"""A stored analysis with a map, written as an analyse job writes it (for map tests and bench/map_*.py)."""

from __future__ import annotations

import numpy as np

from app.db.models import Job
from app.embeddings import analyses
from app.training.artifacts import job_dir


def stored_analysis(db, settings, ids, xy, *, space: int = 0) -> int:
    """A succeeded analyse job whose `ids` and `xy` files hold these points (rows sorted by id); its id."""
    ids = np.asarray(ids, dtype=np.int64)
    order = np.argsort(ids)
    with db.writing() as s:
        job = Job(kind=analyses.KIND, config={"space": space}, status="succeeded", artifacts={})
        s.add(job)
        s.flush()
        folder = job_dir(settings, job.id)
        files = {"ids": analyses.save(folder, "ids", ids[order]),
                 "xy": analyses.save(folder, "xy", np.asarray(xy, dtype=np.float32)[order])}
        job.artifacts = {"space": space, "files": files}
        s.commit()
        return job.id
