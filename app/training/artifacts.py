"""Where a job's files are, even after the data dir moved (a restore, another machine).

Jobs record absolute paths; a backup restored elsewhere keeps the same layout
under its own data dir, so a path that no longer exists is looked up there.
"""

from __future__ import annotations

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
