"""An `analyse` job's results: arrays over one embedding space, read by pages and the queues.

An analysis is a job of kind "analyse" (config {"space": N}, N a train or
embed job whose embeddings it reads). It writes one .npy file per result in
its job folder, all aligned row for row with `ids` (image ids, int64,
sorted), and records them in job.artifacts = {"space": N, "files": {name:
path}}. Pages never compute these: they read the newest succeeded analysis
(issue 16: whole-dataset work belongs to the worker).

The names (not every analysis has every file; a reader asks `has`):
  ids               int64 (n,)      the images analysed, sorted
  xy                float32 (n, 2)  the map: a 2-D projection (app.embeddings.projection)
  knn               int32 (n, K)    rows of each image's K nearest neighbours, nearest first
  knn_distance      float16 (n, K)  their cosine distances
  outlier           float32 (n,)    outlier score (higher = stranger), normalised per class: a robust z-score
  outlier_knn       int32 (n, K)    rows of the K nearest labelled images the outlier score measured (else any)
  outlier_knn_distance float16 (n, K) their cosine distances
  outlier_class     int64 (n,)      the class id each outlier score was measured against (-1: every image)
  outlier_usual     float32 (n,)    that class's median of the distance scored (the "usual" distance)
  neighbour_share   float32 (n,)    share of the K out-of-sample neighbours that carry the image's label;
                                    NaN for an image without a label then
  share_neighbours  int64 (n, K)    the image ids those out-of-sample neighbours are, -1 padded
  diverse           int64 (m,)      unlabelled image ids in the "diverse" labelling order
  outlier_scale     float32 (n,)    the scale of the robust z of each row's group (z = (d - usual) / scale)
  outlier_reference bool (n,)       the rows the outlier distances were measured to (labelled, not excluded
                                    when the analysis read the labels)
  map_class         int32 (n,)      the current class when the analysis read the labels (-1 none)
  map_source        int32 (n,)      the image's source id
  map_marks         uint8 (n,)      bits: 1 labelled, 2 excluded, at that time
  map_split         int8 (n,)       the split in snapshot artifacts["snapshot"] (app.embeddings.maps.SPLITS; -1)

job.metrics["stamp"] is what the analysis saw (app.db.asof.stamp: the
time, the newest label event, image and exclusion), taken before it read the
labels: everything after it is "since", and the map's colours are the stored
map_* state with every label and exclusion made since applied (app.embeddings.maps).
An extension (config {"space": N, "extend": true}, app.embeddings.extend) places
images embedded since into its base analysis without recomputing the rest; its
artifacts["borrowed"] names files it reuses from an older analysis ({name: job}).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.artifacts import file_key, job_dir
from app.config import Settings
from app.db.models import Job

KIND = "analyse"
FILES = {"ids": "analysis-ids.npy", "xy": "map.npy", "knn": "knn.npy", "knn_distance": "knn-distance.npy",
         "outlier": "outlier.npy",
         "outlier_knn": "outlier-knn.npy", "outlier_knn_distance": "outlier-knn-distance.npy",
         "outlier_class": "outlier-class.npy", "outlier_usual": "outlier-usual.npy",
         "share_neighbours": "share-neighbours.npy", "neighbour_share": "neighbour-share.npy", "diverse": "diverse.npy",
         "outlier_scale": "outlier-scale.npy", "outlier_reference": "outlier-reference.npy",
         "map_class": "map-class.npy", "map_source": "map-source.npy", "map_marks": "map-marks.npy",
         "map_split": "map-split.npy"}


def save(folder: Path, name: str, array: np.ndarray) -> str:
    """Write one result file atomically (a reader never sees half a file); returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FILES[name]
    temp = folder / f".{path.name}.part"
    with open(temp, "wb") as f:
        np.save(f, array)
    os.replace(temp, path)
    return str(path)


@dataclass
class Analysis:
    job: int  # the analyse job
    space: int  # the train or embed job whose embeddings were analysed
    files: dict[str, str]  # name -> recorded path
    settings: Settings
    stamp: dict | None = None  # app.db.asof.stamp, taken before the labels were read (None: older jobs)
    borrowed: dict[str, int] = field(default_factory=dict)  # name -> the older analysis whose file it is
    extends: int | None = None  # the analysis this one extended (app.embeddings.extend), None: a full one
    _arrays: dict = field(default_factory=dict, repr=False)

    def has(self, name: str) -> bool:
        return name in self.files

    def array(self, name: str) -> np.ndarray:
        """The named result, memory-mapped read-only (fetched once from a remote store when not here)."""
        if name not in self._arrays:
            self._arrays[name] = np.load(self._local(name), mmap_mode="r")
        return self._arrays[name]

    @property
    def ids(self) -> np.ndarray:
        return self.array("ids")

    def row(self, image_id: int) -> int | None:
        ids = self.ids
        at = int(np.searchsorted(ids, image_id))
        return at if at < len(ids) and ids[at] == image_id else None

    def path(self, name: str) -> Path:
        """The named result's file on this machine (fetched once from a remote store when not here)."""
        return self._local(name)

    def _local(self, name: str) -> Path:
        recorded = Path(self.files[name])
        owner = int(self.borrowed.get(name, self.job))  # a file an extension reuses lives with its writer
        for path in (recorded, job_dir(self.settings, owner) / recorded.name):
            if path.is_file():
                return path
        target = self.settings.cache_dir / "analyses" / f"job-{owner}" / recorded.name
        if not target.is_file():
            from app.images import blobs

            blobs.for_settings(self.settings).fetch(file_key(owner, recorded.name), target)
        return target


def of_job(settings: Settings, job: Job) -> Analysis:
    artifacts = job.artifacts or {}
    return Analysis(job=job.id, space=int(artifacts.get("space") or 0), files=dict(artifacts.get("files") or {}),
                    settings=settings, stamp=(job.metrics or {}).get("stamp"),
                    borrowed={k: int(v) for k, v in (artifacts.get("borrowed") or {}).items()},
                    extends=artifacts.get("extends"))


def latest(session: Session, settings: Settings, space: int | None = None) -> Analysis | None:
    """The newest succeeded analysis (of `space` when given), or None when there is none yet."""
    for job in session.scalars(select(Job).where(Job.kind == KIND, Job.status == "succeeded")
                               .order_by(Job.id.desc()).limit(50)):
        analysis = of_job(settings, job)
        if "ids" in analysis.files and (space is None or analysis.space == space):
            return analysis
    return None
