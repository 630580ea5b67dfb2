"""Embedding spaces: which job's embeddings the pages, the map and the queues look through.

A space is a succeeded train job (its final model's penultimate layer, extended
by its later predict jobs) or a succeeded embed job (a pretrained backbone).
The newest one wins: a person who runs an embed job asked for it, and a newer
model has seen more labels.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Job

SPACE_KINDS = ("train", "embed")


def latest_space(session: Session) -> Job | None:
    """The newest succeeded train or embed job that stored embeddings, or None."""
    for job in session.scalars(select(Job).where(Job.kind.in_(SPACE_KINDS), Job.status == "succeeded")
                               .order_by(Job.id.desc()).limit(20)):
        if (job.artifacts or {}).get("embeddings"):
            return job
    return None
