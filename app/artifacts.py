"""Where a job's files are, even after the data dir moved (a restore, another machine).

Jobs record absolute paths; a backup restored elsewhere keeps the same layout
under its own data dir, so a path that no longer exists is looked up there.
With a remote image store the final model is also put there, because the
worker that trained it may be on another machine than the app.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from app.config import Settings


def job_dir(settings: Settings, job_id: int) -> Path:
    return settings.jobs_dir / f"job-{job_id}"


def artifact_path(settings: Settings, job, key: str) -> Path | None:
    """The file a job saved under artifacts[key], or None when it has none or the file is gone."""
    recorded = (job.artifacts or {}).get(key) if job is not None else None
    if not recorded:
        return None
    path = Path(recorded)
    if path.is_file():
        return path
    moved = job_dir(settings, job.id) / path.name
    return moved if moved.is_file() else None


def model_key(job_id: int) -> str:
    """The image store key of a job's final model (a path under the data dir for a local store)."""
    return file_key(job_id, "model.pt")


def file_key(job_id: int, name: str) -> str:
    """The image store key of a file in a job's folder (a path under the data dir for a local store)."""
    return f"jobs/job-{job_id}/{name}"


def publish_model(settings: Settings, job_id: int, model_path: str | None) -> None:
    """Put the final model in a remote image store, so that the app on another machine can serve it.

    A local store needs nothing: the model is already at its key under the data dir.
    """
    _publish(settings, model_key(job_id), model_path)


def publish_embeddings(settings: Settings, job_id: int, embeddings: dict | None) -> None:
    """Put a job's embedding files in a remote image store, as the model: the app may be on another machine."""
    for key in ("embeddings", "embedding_ids", "oof_embeddings", "oof_embedding_ids"):
        path = (embeddings or {}).get(key)
        if path:
            _publish(settings, file_key(job_id, Path(path).name), path)


def publish_file(settings: Settings, job_id: int, path: str | None) -> None:
    """Put one file of a job's folder (e.g. an analysis' arrays) in a remote image store, under file_key."""
    if path:
        _publish(settings, file_key(job_id, Path(path).name), path)


def _publish(settings: Settings, key: str, path: str | None) -> None:
    from app.images import blobs

    store = blobs.for_settings(settings)
    if not path or store.local_path(key) is not None:
        return
    temp = settings.tmp_dir / f"{key.replace('/', '-')}.tmp"
    temp.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, temp)
    try:
        store.put(temp, key)
    finally:
        temp.unlink(missing_ok=True)


# What a train job keeps only to resume after a crash (app.training.train): checkpoints, the fold models'
# probabilities and embeddings before they are merged. Once the job is finished they double its disk use
# (the fold embeddings are oof-embeddings.npy again, the final checkpoint is model.pt again).
RESUME_FILES = ("ckpt-*.pt", "oof-fold*.npz", "emb-fold*.npy")


def drop_resume_files(settings: Settings, job_id: int) -> int:
    """Delete a finished job's resume-only files; returns how many bytes that freed."""
    freed = 0
    folder = job_dir(settings, job_id)
    for pattern in RESUME_FILES:
        for path in folder.glob(pattern):
            freed += path.stat().st_size
            path.unlink(missing_ok=True)
    return freed

