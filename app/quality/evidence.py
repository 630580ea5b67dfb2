"""What the review page shows beside one flag: the label and who made it, the model's view, near-duplicates."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.models import CurrentLabel, Flag, Image, Job, LabelClass, LabelEvent, Prediction, TaxonomyVersion
from app.images.catalog import library_counts
from app.labelling.keys import confidence_name
from app.labelling.suggestions import latest_job, suggestions
from app.quality.flags import REVIEWED_KINDS, view
from app.snapshots import looks
from app.snapshots.neardup import MAX_DISTANCE
from app.timeutil import iso

NEIGHBOURS = 12


def next_flag(session: Session, *, kind: str | None = None, skip: Sequence[int] = ()) -> Flag | None:
    """The open flag to review next: highest score first, then oldest."""
    q = select(Flag).where(Flag.status == "open", Flag.kind.in_([kind] if kind else REVIEWED_KINDS))
    if skip:
        q = q.where(Flag.id.not_in(list(skip)))
    return session.scalars(q.order_by(Flag.score.desc().nulls_last(), Flag.id).limit(1)).first()


def open_count(session: Session, kind: str | None = None) -> int:
    return session.scalar(select(func.count()).where(
        Flag.status == "open", Flag.kind.in_([kind] if kind else REVIEWED_KINDS)))


def _label(session: Session, image_id: int) -> dict | None:
    current = session.get(CurrentLabel, image_id)
    if current is None or current.class_id is None:
        return None
    event = session.get(LabelEvent, current.event_id)
    version = session.get(TaxonomyVersion, event.taxonomy_version_id) if event.taxonomy_version_id else None
    return {"class": session.get(LabelClass, current.class_id).name, "class_id": current.class_id,
            "event": event.id, "annotator": event.annotator, "created_at": iso(event.created_at),
            "confidence": event.confidence, "confidence_name": confidence_name(event.confidence),
            "taxonomy_version": version.number if version else None, "kind": event.kind, "tags": event.tags,
            "note": event.note, "ms": event.ms}


def _model(session: Session, flag: Flag) -> dict | None:
    job = None
    if flag.kind == "mislabel" and (flag.details or {}).get("job"):
        job = session.get(Job, flag.details["job"])
    job = job or latest_job(session)
    if job is None or session.get(Prediction, (job.id, flag.image_id)) is None:
        return None
    return {"job": job.id, "top": suggestions(session, flag.image_id, job)}


_HASHES: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def _all_hashes(session: Session) -> tuple[np.ndarray, np.ndarray]:
    """(ids, pHashes as uint64) of every image; kept while no image is added (hashes never change)."""
    key = (library_counts(session)["images"], session.scalar(select(func.max(Image.id))))
    if key not in _HASHES:
        rows = session.connection().execute(select(Image.id, Image.phash).order_by(Image.id)).all()
        ids, hashes = (zip(*rows) if rows else ((), ()))
        _HASHES.clear()
        _HASHES[key] = (np.array(ids, dtype=np.int64), np.array(hashes, dtype=np.int64).view(np.uint64))
    return _HASHES[key]


def _neighbours(session: Session, image: Image, flag: Flag) -> list[dict]:
    """Images within MAX_DISTANCE pHash bits that the thumbnails confirm (and a duplicate flag's group),
    nearest first, with their labels."""
    ids, hashes = _all_hashes(session)
    dist = np.bitwise_count(hashes ^ np.array([image.phash], dtype=np.int64).view(np.uint64))
    close = np.flatnonzero((dist <= MAX_DISTANCE) & (ids != image.id))
    close = close[np.argsort(dist[close], kind="stable")]
    if len(close):  # the second check: a pHash look-alike that the thumbnails disagree with is not evidence
        shas = dict(session.execute(select(Image.id, Image.sha256).where(Image.id.in_(ids[close].tolist()))).all())
        candidates = [image.sha256] + [shas[int(i)] for i in ids[close]]
        ok = looks.confirmer(session, candidates)(np.zeros(len(close), np.int64), np.arange(1, len(close) + 1))
        close = close[ok]
    close = close[:NEIGHBOURS]
    found: dict[int, int | None] = {int(ids[i]): int(dist[i]) for i in close}
    for other in (flag.details or {}).get("group", []):
        if other != image.id and other not in found and len(found) < NEIGHBOURS:
            found[int(other)] = None  # grouped through a chain or the model's embeddings
    if not found:
        return []
    labels = dict(session.execute(
        select(CurrentLabel.image_id, LabelClass.name).join(LabelClass, LabelClass.id == CurrentLabel.class_id)
        .where(CurrentLabel.image_id.in_(list(found)))).all())
    excluded = set(session.scalars(select(Image.id).where(Image.id.in_(list(found)), Image.excluded)))
    return [{"image": i, "distance": d, "class": labels.get(i), "excluded": i in excluded} for i, d in found.items()]


def evidence(session: Session, flag: Flag) -> dict:
    """Everything the review page shows for one flag."""
    image = session.get(Image, flag.image_id)
    details = flag.details or {}
    audit = None
    if flag.kind == "audit" and "audit_class_id" in details:
        cls = session.get(LabelClass, details["audit_class_id"])
        audit = {"class": cls.name if cls else None, "confidence": details.get("audit_confidence"),
                 "labelled_at": details.get("labelled_at"), "answered_at": details.get("answered_at")}
    return {
        "flag": view(session, flag), "image": image, "label": _label(session, image.id),
        "model": _model(session, flag), "neighbours": _neighbours(session, image, flag), "audit": audit,
    }
