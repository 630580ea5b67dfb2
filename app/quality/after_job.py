"""What the worker does after a job succeeds: mislabel flags and duplicate conflicts.

Kept apart from both checks so the worker imports one function, and so a
failing check is logged rather than stopping the worker's queue.
"""

from __future__ import annotations

import functools
import logging

from app.config import Settings
from app.errors import Conflict
from app.quality.duplicate_flags import flag_duplicates
from app.quality.mislabel_flags import check_job

log = logging.getLogger(__name__)


def _check_duplicates(db, *, job_id: int) -> dict:
    with db.writing() as s:
        return flag_duplicates(s)


def after_job(db, job_id: int, settings: Settings | None = None) -> None:
    """What the worker does after a job succeeds: mislabel flags (when it has out-of-sample predictions) and
    duplicate conflicts. Never raises: a quality check must not stop the worker's queue."""
    checks = (("mislabel", functools.partial(check_job, settings=settings)), ("duplicate", _check_duplicates))
    for what, run in checks:
        try:
            counts = run(db, job_id=job_id)
            log.info("job %s: %s flags %s", job_id, what, counts)
        except Conflict as exc:
            log.info("job %s: no %s flags: %s", job_id, what, exc.detail)
        except Exception:
            log.exception("job %s: %s detection failed", job_id, what)
