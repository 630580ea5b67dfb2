"""The web process's reaper: a job whose worker died is requeued even when no other worker is left to notice.

Workers reap too (before each claim), but with one worker, killed, nobody
would; the job would show "running" for ever. No torch here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import func, select

from app.db.engine import Database
from app.db.models import Job
from app.timeutil import utcnow
from app.training import jobs

log = logging.getLogger("loupe.reaper")


def reap_once(db: Database, *, stale_after_s: float) -> list[int]:
    """Requeue or fail stale running jobs; the write lock is taken only when there are some."""
    cutoff = utcnow() - timedelta(seconds=stale_after_s)
    with db.reading() as s:
        stale = s.scalar(select(func.count()).select_from(Job)
                         .where(Job.status == "running", Job.heartbeat_at < cutoff))
    if not stale:
        return []
    with db.writing() as s:
        return jobs.reap(s, stale_after_s=stale_after_s)


def start_reaper(db: Database, *, stale_after_s: float) -> Callable[[], None]:
    """Look every third of `stale_after_s` (at most every 10 s) in a daemon thread; returns a stop function."""
    done = threading.Event()
    interval = min(10.0, max(0.2, stale_after_s / 3))

    def loop() -> None:
        while not done.wait(interval):
            try:
                reaped = reap_once(db, stale_after_s=stale_after_s)
                if reaped:
                    log.warning("requeued or failed jobs %s: their worker stopped responding", reaped)
            except Exception:  # a busy or briefly unreachable database must not end the loop
                log.exception("reaping stale jobs failed")

    thread = threading.Thread(target=loop, name="loupe-reaper", daemon=True)
    thread.start()

    def stop() -> None:
        done.set()
        thread.join(timeout=5)

    return stop
