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
    return f"jobs/job-{job_id}/model.pt"


def publish_model(settings: Settings, job_id: int, model_path: str | None) -> None:
    """Put the final model in a remote image store, so that the app on another machine can serve it.

    A local store needs nothing: the model is already at its key under the data dir.
    """
    from app.images import blobs

    store = blobs.for_settings(settings)
    if not model_path or store.local_path(model_key(job_id)) is not None:
        return
    temp = settings.tmp_dir / f"model-{job_id}.pt.tmp"
    temp.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model_path, temp)
    try:
        store.put(temp, model_key(job_id))
    finally:
        temp.unlink(missing_ok=True)
