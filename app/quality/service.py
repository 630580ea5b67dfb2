"""Quality results into flags: suspected mislabels from a finished job, near-duplicate label conflicts.

A job's probabilities are indexed by the classes its snapshot froze. Before
anything is compared with today's labels, each frozen class is followed
through merges to the class in use now (probabilities of merged classes add
up); a class split or retired since has no single heir, so its column and its
images drop out (those images wait in re-review anyway).

Flags are one open flag per image and kind. A new job only raises the score of
an open flag when it disagrees more strongly, and a label a reviewer kept (or
marked ambiguous) is flagged again only when a newer job's score is worse than
the score it was kept at, and only while that label is still the current one.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Text, cast, func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.models import CurrentLabel, Flag, Image, Job, LabelEvent, Prediction, Snapshot, SnapshotItem
from app.errors import Conflict, NotFound
from app.labelling.heirs import heir
from app.quality import duplicates, mislabels, noise
from app.quality.neighbourhood import job_neighbours
from app.snapshots import looks, neardup
from app.timeutil import utcnow

log = logging.getLogger("loupe.quality")
OUT_OF_SAMPLE_ROLES = ("oof", "holdout")
KEPT = ("keep", "ambiguous")
GROUP_DETAILS = 50


@dataclass
class JobProbs:
    """A job's out-of-sample probabilities over today's active classes, one row per snapshot image."""

    job_id: int
    image_ids: np.ndarray  # (N,)
    labels: np.ndarray  # (N,) index into class_ids: the snapshot's label, followed to its heir
    probs: np.ndarray  # (N, K)
    confidence: np.ndarray  # (N,) annotator confidence of the snapshot's label event (NaN unknown)
    folds: np.ndarray  # (N,)
    event_ids: np.ndarray  # (N,) the snapshot's label event
    class_ids: list[int] = field(default_factory=list)  # (K,) active class id per column


def active_class(session: Session, class_id: int, cache: dict | None = None) -> int | None:
    """The class in use today that `class_id` became (itself, or its merge heir); None after a split or retire."""
    cls = heir(session, class_id, {} if cache is None else cache)
    return cls.id if cls is not None else None


def finished_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    if job.status != "succeeded":
        raise Conflict(f"job {job_id} is {job.status}; only a succeeded job's predictions can be checked")
    return job


def job_probs(session: Session, job: Job) -> JobProbs:
    """The job's out-of-sample predictions for its snapshot's images, mapped to today's classes.

    Raises Conflict when the job wrote no out-of-sample predictions.
    """
    snapshot = session.get(Snapshot, job.snapshot_id)
    frozen = [c["id"] for c in snapshot.classes]
    cache: dict = {}
    heirs = [active_class(session, cid, cache) for cid in frozen]
    class_ids = sorted({h for h in heirs if h is not None}, key=heirs.index)
    column = {cid: k for k, cid in enumerate(class_ids)}
    rows = session.connection().execute(
        select(Prediction.image_id, cast(Prediction.probs, Text), SnapshotItem.class_id, SnapshotItem.fold,
               SnapshotItem.label_event_id, LabelEvent.confidence)
        .join(SnapshotItem, (SnapshotItem.image_id == Prediction.image_id)
              & (SnapshotItem.snapshot_id == job.snapshot_id))
        .join(LabelEvent, LabelEvent.id == SnapshotItem.label_event_id)
        .where(Prediction.job_id == job.id, Prediction.role.in_(OUT_OF_SAMPLE_ROLES), Prediction.out_of_sample)
        .order_by(Prediction.image_id)
    ).all()
    if not rows:
        raise Conflict(f"job {job.id} has no out-of-sample predictions to check labels with")
    image_ids, texts, given, folds, events, confidence = zip(*rows)
    raw = np.array(json.loads("[" + ",".join(texts) + "]"), dtype=np.float64)
    if raw.ndim != 2 or raw.shape[1] != len(frozen):
        raise Conflict(f"job {job.id}'s predictions do not match its snapshot's {len(frozen)} classes")
    merge = np.zeros((len(frozen), len(class_ids)))
    for k, today in enumerate(heirs):
        if today is not None:
            merge[k, column[today]] = 1.0
    probs = raw @ merge
    given = np.array(given, dtype=np.int64)
    distinct = np.unique(given)
    to_column = np.array([column.get(active_class(session, int(c), cache), -1) for c in distinct], dtype=np.int64)
    labels = to_column[np.searchsorted(distinct, given)]
    keep = (labels >= 0) & (probs.sum(axis=1) > 0)
    probs = probs[keep] / probs[keep].sum(axis=1, keepdims=True)
    conf = np.array([np.nan if c is None else c for c in confidence], dtype=np.float64)
    return JobProbs(job.id, np.array(image_ids, dtype=np.int64)[keep], labels[keep], probs, conf[keep],
                    np.array(folds, dtype=np.int64)[keep], np.array(events, dtype=np.int64)[keep], class_ids)


@dataclass
class Detection:
    """What the mislabel detector says about one job's images (nothing written yet)."""

    data: JobProbs
    issues: np.ndarray  # (N,) bool
    quality: np.ndarray  # (N,) label-quality score, lower = more likely wrong
    suggested: np.ndarray  # (N,) column index of the suggested class
    wrong: np.ndarray  # (N,) probability that the label is wrong
    score: np.ndarray  # (N,) the review order, higher first (app.quality.mislabels.detect)
    noise: dict  # the noise estimate for the quality page (app.quality.noise.summary)
    use_confidence: bool = True
    neighbours: bool = False  # whether out-of-sample neighbours were weighed


def detect_mislabels(session: Session, *, job_id: int, use_confidence: bool = True,
                     settings: Settings | None = None) -> Detection:
    """Find a succeeded job's likely mislabels from its out-of-sample predictions (reads only).

    With `settings`, the job's out-of-sample embeddings (when it kept them) add
    each image's neighbours' labels as evidence (app.quality.neighbourhood).
    """
    job = finished_job(session, job_id)
    data = job_probs(session, job)
    if len(np.unique(data.labels)) < 2 or data.probs.shape[1] < 2:
        raise Conflict(f"job {job_id}'s images cover fewer than two of today's classes; nothing to compare")
    prior = data.confidence if use_confidence else None
    near = None if settings is None else job_neighbours(settings, job, data.image_ids, data.labels, data.folds)
    found = mislabels.detect(data.labels, data.probs, prior=prior, neighbours=near)
    suggested = mislabels.suggested_classes(data.labels, found["posterior"])
    estimate = noise.estimate(session, data, posterior=found["posterior"], neighbours=near is not None)
    return Detection(data, found["issues"], found["quality"], suggested, found["wrong"], found["score"], estimate,
                     use_confidence=use_confidence, neighbours=near is not None)


def _current(session: Session, image_ids) -> dict[int, tuple[int, int | None, bool]]:
    """image id -> (current event id, current class id, excluded)."""
    out = {}
    ids = [int(i) for i in image_ids]
    for start in range(0, len(ids), 5000):
        chunk = ids[start:start + 5000]
        rows = session.execute(
            select(Image.id, CurrentLabel.event_id, CurrentLabel.class_id, Image.excluded)
            .outerjoin(CurrentLabel, CurrentLabel.image_id == Image.id).where(Image.id.in_(chunk)))
        out.update({i: (e, c, x) for i, e, c, x in rows})
    return out


def _flags_by_image(session: Session, kind: str, image_ids: set[int]) -> tuple[dict, dict]:
    """(open flag per image, latest kept/ambiguous resolved flag per image) of `kind` among `image_ids`."""
    opened, kept = {}, {}
    flags = session.scalars(
        select(Flag).where(Flag.kind == kind, (Flag.status == "open") | Flag.resolution.in_(KEPT)).order_by(Flag.id))
    for f in flags:
        if f.image_id in image_ids:
            (opened if f.status == "open" else kept)[f.image_id] = f
    return opened, kept


def _raise_or_create(session: Session, *, kind: str, image_id: int, score: float, suggested: int | None,
                     details: dict, current_event: int | None, opened: dict, kept: dict, counts: dict) -> None:
    """One flag per image and kind: raise an open one's score, respect a kept label, or open a new one."""
    flag = opened.get(image_id)
    if flag is not None:
        if score > (flag.score or 0.0) + 1e-9:
            flag.details = {**details, "raised_from": flag.score}
            flag.score, flag.suggested_class_id = score, suggested
            counts["raised"] += 1
        else:
            counts["unchanged"] += 1
        return
    previous = kept.get(image_id)
    if previous is not None and previous.details.get("label_event_id") == current_event:
        if score <= (previous.score or 0.0) + 1e-9:
            counts["kept"] += 1
            return
        details = {**details, "previously_kept": previous.id}
    session.add(Flag(image_id=image_id, kind=kind, score=score, suggested_class_id=suggested, status="open",
                     details=details))
    counts["created"] += 1


def flag_mislabels(session: Session, *, job_id: int, use_confidence: bool = True,
                   found: Detection | None = None, settings: Settings | None = None) -> dict:
    """Suspected mislabels of a succeeded job as flags (kind "mislabel"); commits. Returns counts.

    `found`: a detection made beforehand in a read session (see `check_job`), so
    the write lock is held only while flags are written.
    """
    found = found or detect_mislabels(session, job_id=job_id, use_confidence=use_confidence, settings=settings)
    data = found.data
    idx = np.flatnonzero(found.issues)
    current = _current(session, data.image_ids[idx])
    opened, kept = _flags_by_image(session, "mislabel", {int(data.image_ids[i]) for i in idx})
    counts = {"created": 0, "raised": 0, "unchanged": 0, "kept": 0, "changed": 0}
    for i in idx.tolist():
        image_id = int(data.image_ids[i])
        event, class_id, excluded = current.get(image_id, (None, None, True))
        if excluded or class_id != data.class_ids[data.labels[i]]:
            counts["changed"] += 1  # relabelled or excluded since the snapshot: the job judged an old label
            continue
        probs = data.probs[i]
        top = np.argsort(-probs)[:3]
        details = {"job": job_id, "snapshot_event_id": int(data.event_ids[i]), "label_event_id": event,
                   "quality": round(float(found.quality[i]), 6),
                   "wrong": round(float(found.wrong[i]), 6),
                   "neighbours": found.neighbours,
                   "given_prob": round(float(probs[data.labels[i]]), 6),
                   "top": [{"class_id": data.class_ids[k], "prob": round(float(probs[k]), 6)} for k in top],
                   "use_confidence": use_confidence}
        _raise_or_create(session, kind="mislabel", image_id=image_id, score=round(float(found.score[i]), 6),
                         suggested=data.class_ids[found.suggested[i]], details=details, current_event=event,
                         opened=opened, kept=kept, counts=counts)
    job = session.get(Job, job_id)
    job.metrics = {**(job.metrics or {}), noise.METRIC: found.noise}
    session.commit()
    return {"job": job_id, "examined": int(len(data.labels)), "issues": int(len(idx)), **counts,
            "estimated_noise": round(found.noise["noise"], 4), "neighbours": found.neighbours}


LIVE_CHUNK = 50_000  # rows turned into arrays at a time: 1,000,000 rows as tuples at once took ~200 MB


def live_images(session: Session) -> dict[str, np.ndarray]:
    """Every image not excluded, in id order: "ids", "phashes", "classes" and "events" (current label; -1
    when unlabelled), "sources" (source id) and "shas" (a list of sha256)."""
    # The option on the statement, not the connection: Connection.execution_options changes the session's
    # connection in place, and on PostgreSQL its later INSERTs then went through a server-side cursor (an error).
    result = session.connection().execute(
        select(Image.id, Image.phash, func.coalesce(CurrentLabel.class_id, -1),
               func.coalesce(CurrentLabel.event_id, -1), Image.source_id, Image.sha256)
        .outerjoin(CurrentLabel, CurrentLabel.image_id == Image.id)
        .where(Image.excluded.is_(False)).order_by(Image.id).execution_options(yield_per=LIVE_CHUNK)
    )
    names = ("ids", "phashes", "classes", "events", "sources")
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    shas: list[str] = []
    for rows in result.partitions():
        cols = list(zip(*rows))  # per column: numpy converts a tuple of ints far faster than rows
        for name, col in zip(names, cols):
            parts[name].append(np.array(col, dtype=np.int64))
        shas.extend(cols[5])
    out = {name: np.concatenate(chunks) if chunks else np.empty(0, np.int64) for name, chunks in parts.items()}
    out["shas"] = shas
    return out


def near_groups(session: Session, live: dict, *, max_distance: int = neardup.MAX_DISTANCE) -> np.ndarray:
    """`live_images`' near-duplicate groups: pHash candidates confirmed by their thumbnails (`app.snapshots.looks`)."""
    if not len(live["ids"]):
        return np.empty(0, np.int64)
    return duplicates.phash_groups(live["phashes"], max_distance=max_distance,
                                   confirm=looks.confirmer(session, live["shas"]))


def load_embeddings(job: Job | None) -> tuple[np.ndarray, np.ndarray] | None:
    """(image ids, vectors) a job saved as artifacts["embeddings"] (an .npz with "image_ids" and "vectors").

    Only that .npz proposes duplicate groups. The worker's own search embeddings (embeddings.npy, see
    app.embeddings.files) do not: a trained model puts look-alikes of one class close together by design,
    so proposing from them would flag ordinary same-class neighbours as copies (issue 14 will use them to
    confirm pHash pairs instead).
    """
    path = (job.artifacts or {}).get("embeddings") if job is not None else None
    if not path or not str(path).endswith(".npz"):
        return None
    try:
        with np.load(path) as npz:
            return np.asarray(npz["image_ids"], dtype=np.int64), np.asarray(npz["vectors"], dtype=np.float64)
    except (OSError, KeyError, ValueError):
        log.warning("job %s: embeddings at %s could not be read", job.id, path)
        return None


def duplicate_groups(session: Session, *, job: Job | None = None) -> dict:
    """Near-duplicate groups of the live images: by pHash, joined with model-embedding groups when there are some."""
    live = live_images(session)
    ids, classes, events = live["ids"], live["classes"], live["events"]
    group = near_groups(session, live)
    via = np.where(np.bincount(group, minlength=len(ids))[group] > 1, "phash", "") if len(ids) else np.empty(0, str)
    embedded = load_embeddings(job)
    if embedded is not None and len(ids):
        e_ids, vectors = embedded
        inside = np.isin(e_ids, ids)
        e_group = duplicates.embedding_groups(vectors[inside])
        pos = np.searchsorted(ids, e_ids[inside])
        # Join the two relations: connected components over "same pHash group" or "same embedding group".
        offset = group.max() + 1
        extra = np.full(len(ids), -1, dtype=np.int64)
        extra[pos] = e_group + offset
        pairs = np.flatnonzero(extra >= 0)
        joint = np.concatenate([group, extra[pairs]])
        members = np.concatenate([np.arange(len(ids)), pairs])
        merged = _union(len(ids), members, joint)
        newly = (np.bincount(merged, minlength=len(ids))[merged] > 1) & (via == "")
        via = np.where(newly, "embedding", via)
        group = merged
    return {"ids": ids, "group": group, "classes": classes, "events": events, "via": via}


def _union(n: int, members: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Components of n nodes where nodes sharing a key are connected."""
    order = np.argsort(keys, kind="stable")
    same = keys[order][1:] == keys[order][:-1]
    a, b = members[order][:-1][same], members[order][1:][same]
    from app.snapshots.neardup import _components  # the same union-find the pHash grouping uses

    return _components(n, a, b)


def flag_duplicates(session: Session, *, job_id: int | None = None) -> dict:
    """Flag labelled near-duplicates whose labels disagree (kind "duplicate"); cancel conflicts that went away."""
    job = session.get(Job, job_id) if job_id else None
    found = duplicate_groups(session, job=job)
    ids, group, classes, events = found["ids"], found["group"], found["classes"], found["events"]
    result = duplicates.label_conflicts(group, classes) if len(ids) else {"conflict": np.zeros(0, bool)}
    conflict = result["conflict"]
    flagged = set(ids[conflict].tolist())
    opened, kept = _flags_by_image(session, "duplicate", flagged | _open_ids(session, "duplicate"))
    counts = {"created": 0, "raised": 0, "unchanged": 0, "kept": 0, "cancelled": 0}
    members: dict[int, list[int]] = {}
    for i in np.flatnonzero(conflict).tolist():
        members.setdefault(int(group[i]), []).append(i)
    for g, rows in members.items():
        shown = rows[:GROUP_DETAILS]  # a huge group keeps its first members in each flag's details
        group_ids = [int(ids[i]) for i in shown]
        labels = {str(int(ids[i])): int(classes[i]) for i in shown}
        for i in rows:
            suggested = int(result["suggested"][i])
            details = {"group": group_ids, "labels": labels, "via": str(found["via"][i]) or "phash",
                       "label_event_id": int(events[i])}
            _raise_or_create(session, kind="duplicate", image_id=int(ids[i]), score=round(float(result["score"][i]), 6),
                             suggested=suggested if suggested >= 0 else None, details=details,
                             current_event=int(events[i]), opened=opened, kept=kept, counts=counts)
    for image_id, flag in opened.items():
        if image_id not in flagged:
            cancel(flag, "no conflict any more: the near-duplicates' labels agree, or the images are not "
                         "near-duplicates by today's check")
            counts["cancelled"] += 1
    session.commit()
    return {"groups": len(members), "images": len(flagged), **counts}


def settle_duplicate_group(session: Session, flag: Flag) -> int:
    """After a decision on one member: when the group's labels agree now, cancel the others' duplicate flags."""
    group = [int(i) for i in (flag.details or {}).get("group", [])]
    if not group:
        return 0
    current = _current(session, group)
    labels = {c for e, c, excluded in current.values() if not excluded and c is not None}
    if len(labels) > 1:
        return 0
    others = session.scalars(select(Flag).where(Flag.kind == "duplicate", Flag.status == "open",
                                                Flag.image_id.in_(group))).all()
    for other in others:
        cancel(other, f"settled by the decision on flag #{flag.id}")
    session.commit()
    return len(others)


def _open_ids(session: Session, kind: str) -> set[int]:
    return set(session.scalars(select(Flag.image_id).where(Flag.kind == kind, Flag.status == "open")))


def cancel(flag: Flag, reason: str) -> None:
    flag.status, flag.resolution, flag.resolved_at = "cancelled", "cancelled", utcnow()
    flag.details = {**(flag.details or {}), "cancelled_because": reason}


def check_job(db, *, job_id: int, use_confidence: bool = True, settings: Settings | None = None) -> dict:
    """Detect a job's suspected mislabels reading, then write the flags in a short write transaction."""
    with db.reading() as s:
        found = detect_mislabels(s, job_id=job_id, use_confidence=use_confidence, settings=settings)
    with db.writing() as s:
        return flag_mislabels(s, job_id=job_id, use_confidence=use_confidence, found=found)


def _check_duplicates(db, *, job_id: int) -> dict:
    with db.writing() as s:
        return flag_duplicates(s, job_id=job_id)


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
