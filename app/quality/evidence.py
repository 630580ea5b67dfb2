"""What the review page shows beside one flag: the label and who made it, the model's view, near-duplicates,
the images most like it in embedding space, how many of its out-of-sample neighbours share its label, and for
an outlier flag how far it lies from its class."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.models import (
    CurrentLabel,
    CurrentLabelClass,
    Flag,
    Image,
    Job,
    LabelClass,
    LabelEvent,
    Prediction,
    TaxonomyVersion,
)
from app.embeddings import neighbours as neighbour_labels
from app.embeddings.similar import similar
from app.errors import LoupeError
from app.images.catalog import library_counts
from app.keyboard import confidence_name
from app.labelling.queries import current_sets
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
    """The open flag to review next: highest score first, then oldest (no score last).

    Two statements, each walking ix_flags_status_kind_score_id (migration 0013) from one end per kind: every
    kind's top score, then the oldest flag with the best of them; ORDER BY score DESC, id sorted every open
    flag instead (20 ms with 30,000 open at 1,000,000 images; 1-3 ms now)."""
    kinds = [kind] if kind else list(REVIEWED_KINDS)

    def scoped(*columns, kinds=kinds):
        q = select(*columns).where(Flag.status == "open", Flag.kind.in_(kinds))
        return q.where(Flag.id.not_in(list(skip))) if skip else q

    tops = session.execute(select(*(
        scoped(Flag.score, kinds=[k]).where(Flag.score.is_not(None)).order_by(Flag.score.desc()).limit(1)
        .scalar_subquery() for k in kinds))).one()
    known = [t for t in tops if t is not None]
    best = max(known) if known else None
    chosen = scoped(Flag.id, kinds=[k for k, t in zip(kinds, tops) if t == best] if known else kinds)
    first = session.scalar(chosen.where(Flag.score.is_(None) if best is None else Flag.score == best)
                           .order_by(Flag.id).limit(1))
    return session.get(Flag, first) if first is not None else None


def open_count(session: Session, kind: str | None = None) -> int:
    return session.scalar(select(func.count()).where(
        Flag.status == "open", Flag.kind.in_([kind] if kind else REVIEWED_KINDS)))


def _label(session: Session, image_id: int) -> dict | None:
    """The current label; a set (multi-label) reads as its names joined ("none of these" when empty), with
    `classes` and `class_ids` beside."""
    current = session.get(CurrentLabel, image_id)
    if current is None or (current.class_id is None and not current.multi):
        return None
    event = session.get(LabelEvent, current.event_id)
    version = session.get(TaxonomyVersion, event.taxonomy_version_id) if event.taxonomy_version_id else None
    members = {}
    if current.multi:
        members = dict(session.execute(
            select(LabelClass.id, LabelClass.name).join(CurrentLabelClass, CurrentLabelClass.class_id == LabelClass.id)
            .where(CurrentLabelClass.image_id == image_id).order_by(LabelClass.name)).all())
    name = (", ".join(members.values()) or "none of these") if current.multi else \
        session.get(LabelClass, current.class_id).name
    return {"class": name, "class_id": current.class_id, "multi": current.multi,
            "classes": list(members.values()), "class_ids": list(members),
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


# Database URL -> (ids, pHashes as uint64) of every image, ids ascending (one copy for the app's read and write
# engines: 16 MB at 1,000,000 images). Images are never deleted and their pHash never changes, so an import only
# appends: the next view reads the new rows alone. A full read of 1,000,000 rows takes 1.4-3 s
# (bench/review_pages.py's seed, 2 busy cores); the rows since, a few ms.
_HASHES: dict[str, tuple[np.ndarray, np.ndarray]] = {}
_HASHED_DATABASES = 4  # kept at once (tests open many)
_HASH_LOCK = threading.Lock()
HASH_CHUNK = 50_000  # rows per fetch while reading them: ~3 MB of Python tuples at a time
# The second check reads a thumbnail per candidate (about 0.45 ms each, cold, bench/review_pages.py's note), so the
# candidates are confirmed nearest first in growing rounds until NEIGHBOURS are confirmed, and at most
# MAX_CANDIDATES are looked at: an image of a huge family of look-alikes (50,000 images sharing a pHash in the
# 1,000,000-image bench) made the page read every one (1.6 s). Copies sit at 0-2 bits, ahead of the look-alikes
# at 3-4 that the thumbnails mostly reject (3 of 3,341 pHash pairs kept on 10,000 Fashion-MNIST images,
# app.snapshots.looks), so the strip loses only look-alikes past the 96th nearest.
FIRST_ROUND = 2 * NEIGHBOURS
MAX_CANDIDATES = 8 * NEIGHBOURS


def _read_hashes(session: Session, after: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, pHashes) of the images with id > `after`, ascending, read as plain tuples in chunks (SQLAlchemy rows
    cost 3-4 us each: 1,000,000 of them took 3.6 s against 1.4 s)."""
    cursor = session.connection().connection.cursor()  # the session's own connection: the same transaction
    ids, hashes = [], []
    try:
        cursor.execute("SELECT id, phash FROM images WHERE id > %d ORDER BY id" % int(after))
        while rows := cursor.fetchmany(HASH_CHUNK):
            block = np.array(rows, dtype=np.int64).reshape(-1, 2)
            ids.append(block[:, 0])
            hashes.append(block[:, 1])
    finally:
        cursor.close()
    if not ids:
        return np.zeros(0, np.int64), np.zeros(0, np.uint64)
    return np.concatenate(ids), np.concatenate(hashes).view(np.uint64)


def _all_hashes(session: Session) -> tuple[np.ndarray, np.ndarray]:
    """(ids, pHashes as uint64) of every image, ids ascending; kept per database, new images appended."""
    url = session.get_bind().url.render_as_string(hide_password=False)
    count = library_counts(session)["images"]
    newest = session.scalar(select(func.max(Image.id))) or 0
    with _HASH_LOCK:
        ids, hashes = _HASHES.get(url, (np.zeros(0, np.int64), np.zeros(0, np.uint64)))
    last = int(ids[-1]) if len(ids) else 0
    if len(ids) == count and last == newest:
        return ids, hashes
    if len(ids) > count:  # this view began before an import that another view read already: the rows it sees
        end = int(np.searchsorted(ids, newest, side="right"))
        if end == count:
            return ids[:end], hashes[:end]
    if last < newest and len(ids) < count:  # an import since: read its rows only
        more_ids, more_hashes = _read_hashes(session, last)
        ids, hashes = np.concatenate([ids, more_ids]), np.concatenate([hashes, more_hashes])
    if len(ids) != count:  # not what an import explains (a database made anew at that URL): read them all
        ids, hashes = _read_hashes(session, 0)
    with _HASH_LOCK:
        _HASHES.pop(url, None)
        _HASHES[url] = (ids, hashes)
        while len(_HASHES) > _HASHED_DATABASES:
            _HASHES.pop(next(iter(_HASHES)))
    return ids, hashes


def _neighbours(session: Session, image: Image, flag: Flag) -> list[dict]:
    """Images within MAX_DISTANCE pHash bits that the thumbnails confirm (and a duplicate flag's group),
    nearest first, with their labels."""
    ids, hashes = _all_hashes(session)
    dist = np.bitwise_count(hashes ^ np.array([image.phash], dtype=np.int64).view(np.uint64))
    close = np.flatnonzero(dist <= MAX_DISTANCE)
    close = close[ids[close] != image.id]
    close = close[np.argsort(dist[close], kind="stable")][:MAX_CANDIDATES]
    kept, start, size = [], 0, FIRST_ROUND
    while start < len(close) and len(kept) < NEIGHBOURS:  # nearest first, each round twice the last
        batch = close[start:start + size]
        start, size = start + len(batch), size * 2
        # The second check: a pHash look-alike that the thumbnails disagree with is not evidence.
        shas = dict(session.execute(select(Image.id, Image.sha256).where(Image.id.in_(ids[batch].tolist()))).all())
        candidates = [image.sha256] + [shas[int(i)] for i in ids[batch]]
        ok = looks.confirmer(session, candidates)(np.zeros(len(batch), np.int64), np.arange(1, len(batch) + 1))
        kept += batch[ok].tolist()
    close = kept[:NEIGHBOURS]
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
    members = current_sets(session, ids)  # a set reads as its names
    wanted = {c for m in members.values() for c in m}
    class_names = dict(session.execute(select(LabelClass.id, LabelClass.name).where(LabelClass.id.in_(wanted)))
                       .all()) if wanted else {}
    for image_id, classes in members.items():
        names[image_id] = ", ".join(sorted(class_names[c] for c in classes)) or "none of these"
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
