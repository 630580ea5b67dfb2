"""A stored analysis with a map, written as an analyse job writes it (for map tests and bench/map_*.py)."""

from __future__ import annotations

import numpy as np

from app.artifacts import job_dir
from app.db.models import Job
from app.embeddings import analyses, maps


def stored_analysis(db, settings, ids, xy, *, space: int = 0, state: bool = False) -> int:
    """A succeeded analyse job whose `ids` and `xy` files hold these points (rows sorted by id); its id.

    `state`: also the stamp and the map's stored colours and marks, read now as the analyse job reads them
    (app.embeddings.analyse: the stamp first, then every row's state, then the latest snapshot's splits)."""
    from app.db import asof
    from app.embeddings.analyse import _state

    ids = np.asarray(ids, dtype=np.int64)
    order = np.argsort(ids)
    metrics, extra = {}, {}
    if state:
        with db.reading() as s:
            metrics["stamp"] = asof.stamp(s)
            read = _state(s, ids[order])
            extra["snapshot"], split = maps.latest_split(s, ids[order])
    with db.writing() as s:
        job = Job(kind=analyses.KIND, config={"space": space}, status="succeeded", artifacts={}, metrics=metrics)
        s.add(job)
        s.flush()
        folder = job_dir(settings, job.id)
        files = {"ids": analyses.save(folder, "ids", ids[order]),
                 "xy": analyses.save(folder, "xy", np.asarray(xy, dtype=np.float32)[order])}
        if state:
            files.update(maps.save_state(folder, read, split))
        job.artifacts = {"space": space, "files": files, **extra}
        s.commit()
        return job.id
