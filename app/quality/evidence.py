"""What the review page shows beside one flag: the label and who made it, the model's view, near-duplicates,
the images most like it in embedding space, how many of its out-of-sample neighbours share its label, and for
an outlier flag how far it lies from its class."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.models import CurrentLabel, Flag, Image, Job, LabelClass, LabelEvent, Prediction, TaxonomyVersion
from app.embeddings import neighbours as neighbour_labels
from app.embeddings.similar import similar
from app.errors import LoupeError
from app.images.catalog import library_counts
from app.labelling.keys import confidence_name
from app.labelling.suggestions import latest_job, suggestions
from app.quality.flags import REVIEWED_KINDS, view
from app.snapshots import looks
from app.snapshots.neardup import MAX_DISTANCE
from app.timeutil import iso

NEIGHBOURS = 12
# Similar images in the strip: one row under the evidence (8 thumbnails take 830 of the stage's 940 px on a
# 1300 px wide window, tests/browser/test_review_similar.py's screenshot), and the number of neighbours an outlier
# flag stores (app.embeddings.analyse.FLAG_NEIGHBOURS), so both kinds of flag show a strip of one length.
SIMILAR = 8


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
    return _strip_items(session, list(found.items()))


def _strip_items(session: Session, found: list[tuple[int, float | None]]) -> list[dict]:
    """[{"image", "distance", "class", "excluded"}] in the given order, with today's labels."""
    ids = [i for i, _ in found]
    if not ids:
        return []
    names = dict(session.execute(
        select(CurrentLabel.image_id, LabelClass.name).join(LabelClass, LabelClass.id == CurrentLabel.class_id)
        .where(CurrentLabel.image_id.in_(ids))).all())
    excluded = set(session.scalars(select(Image.id).where(Image.id.in_(ids), Image.excluded)))
    return [{"image": i, "distance": d, "class": names.get(i), "excluded": i in excluded} for i, d in found]


def _similar(session: Session, settings: Settings, flag: Flag) -> dict:
    """The strip: {"job", "items", "why", "stored"}. An outlier flag shows the neighbours its analysis found
    (what the score was computed from); any other flag the nearest images in the latest space covering it."""
    details = flag.details or {}
    if flag.kind == "outlier" and details.get("neighbours"):
        dist = list(details.get("distances") or [])
        found = [(int(i), dist[n] if n < len(dist) else None) for n, i in enumerate(details["neighbours"])]
        return {"job": details.get("space"), "analysis": details.get("analysis"), "stored": True, "why": None,
                "items": _strip_items(session, found[:SIMILAR])}
    try:
        near = similar(session, settings, flag.image_id, k=SIMILAR)
    except LoupeError as exc:  # no embeddings cover the image yet (or their files are gone): say why in one line
        return {"job": None, "analysis": None, "stored": False, "why": exc.detail, "items": []}
    found = [(it["image"], it["distance"]) for it in near["items"]]
    return {"job": near["job"], "analysis": None, "stored": False, "why": None,
            "items": _strip_items(session, found)}


def _outlier(flag: Flag) -> dict | None:
    """An outlier flag in words: {"text", "ratio", "distance", "usual", "class", "compared_with"}."""
    details = flag.details or {}
    if flag.kind != "outlier":
        return None
    cls, against = details.get("class"), details.get("compared_with")
    if cls and against == "prediction":
        whom = f"every {cls} (the class the model predicts for it)"
    elif cls:
        whom = f"every {cls}"
    else:
        whom = "every image"
    distance, usual = details.get("distance"), details.get("usual")
    ratio = distance / usual if distance is not None and usual else None
    if ratio is not None:
        text = f"far from {whom}: {ratio:.1f} times the usual distance"
    elif flag.score is not None:
        text = f"far from {whom} (stranger than {flag.score:.1%} of the images)"
    else:
        text = f"far from {whom}"
    return {"text": text, "ratio": ratio, "distance": distance, "usual": usual, "class": cls,
            "compared_with": against}


def agreement_text(agreement: dict | None, label: str | None) -> str | None:
    """"7 of 10 nearest neighbours (out of sample) are labelled Shirt; 3 T-shirt/top"."""
    if not agreement or not label:
        return None
    others = [f"{n} {name}" for name, n in agreement["classes"].items() if name != label]
    unlabelled = agreement["k"] - sum(agreement["classes"].values())
    if unlabelled > 0:
        others.append(f"{unlabelled} unlabelled now")
    head = (f"{agreement['agree']} of {agreement['k']} nearest neighbours (out of sample) "
            f"{'is' if agreement['agree'] == 1 else 'are'} labelled {label}")
    return head + (f"; {', '.join(others)}" if others else "")


def _agreement(session: Session, settings: Settings, image_id: int) -> dict | None:
    try:
        return neighbour_labels.evidence(session, settings, image_id)
    except (LoupeError, OSError):  # the analysis' files are gone from here and from the store: no line, no 500
        return None


def evidence(session: Session, settings: Settings, flag: Flag) -> dict:
    """Everything the review page shows for one flag."""
    image = session.get(Image, flag.image_id)
    details = flag.details or {}
    audit = None
    if flag.kind == "audit" and "audit_class_id" in details:
        cls = session.get(LabelClass, details["audit_class_id"])
        audit = {"class": cls.name if cls else None, "confidence": details.get("audit_confidence"),
                 "labelled_at": details.get("labelled_at"), "answered_at": details.get("answered_at")}
    label = _label(session, image.id)
    agreement = _agreement(session, settings, image.id)
    return {
        "flag": view(session, flag), "image": image, "label": label,
        "model": _model(session, flag), "neighbours": _neighbours(session, image, flag), "audit": audit,
        "similar": _similar(session, settings, flag),
        "agreement": agreement, "agreement_text": agreement_text(agreement, label["class"] if label else None),
        "outlier": _outlier(flag),
    }
