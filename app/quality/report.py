"""The quality page's numbers: estimated noise, flags, audit agreement, confused classes, duplicates, size.

Noise estimates come from the newest succeeded job with out-of-sample
predictions: the estimate the worker stored when it checked the job's labels
(app.quality.noise), kept per process (keyed by job id) and shown in today's
classes.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
from sqlalchemy import case, select
from sqlalchemy.orm import Session

from app.db.models import FlagCount, Job, LabelClass, Prediction, Snapshot, SnapshotItem
from app.errors import Conflict
from app.images.catalog import library_counts
from app.quality import duplicates, noise, results
from app.quality.audits import audit_stats
from app.quality.duplicate_flags import live_images, near_groups
from app.quality.flags import KINDS
from app.quality.jobprobs import OUT_OF_SAMPLE_ROLES, active_class, job_probs
from app.quality.sources import source_trend
from app.snapshots.sets import is_multi
from app.taxonomy.queries import MULTI, taxonomy_mode

EXAMPLES = 10  # groups shown per duplicate row
EXAMPLE_MEMBERS = 8  # images shown per group: a group of 5,000 copies made the report 2 MB at 100,000 images
# (database, job) -> its noise estimate: a finished job's predictions and frozen snapshot never change.
_NOISE_CACHE: OrderedDict[tuple[str, int], dict] = OrderedDict()
_CACHE_SIZE = 4


def latest_checked_job(session: Session) -> Job | None:
    """The newest succeeded train job that wrote out-of-sample predictions."""
    has = select(Prediction.job_id).where(Prediction.job_id == Job.id, Prediction.role.in_(OUT_OF_SAMPLE_ROLES))
    return session.scalars(
        select(Job).where(Job.status == "succeeded", Job.kind == "train", has.exists()).order_by(Job.id.desc()).limit(1)
    ).first()


def _noise(session: Session, job: Job) -> dict:
    """The estimate the worker stored when it checked the job; computed here (without the neighbour evidence,
    which needs the job's files) for a job checked before estimates were stored."""
    stored = (job.metrics or {}).get(noise.METRIC)
    if stored:
        return stored
    if is_multi(session, session.get(Snapshot, job.snapshot_id)):  # sets are estimated when the job is checked
        raise Conflict(f"job {job.id}'s sets have not been checked yet")
    data = job_probs(session, job)
    return noise.estimate(session, data, prior=data.confidence)


def noise_summary(session: Session, job: Job | None = None) -> dict | None:
    """Estimated noise per class and source and the most-confused class pairs (None without a checked job)."""
    job = job or latest_checked_job(session)
    if job is None:
        return None
    key = (str(session.get_bind().url), job.id)
    if key not in _NOISE_CACHE:
        try:
            _NOISE_CACHE[key] = _noise(session, job)
        except Conflict:
            return None
        while len(_NOISE_CACHE) > _CACHE_SIZE:
            _NOISE_CACHE.popitem(last=False)
    cache: dict = {}
    out = noise.in_todays_classes(_NOISE_CACHE[key], lambda cid: active_class(session, cid, cache) or cid)
    classes = {c.id: c for c in session.scalars(select(LabelClass))}
    name = lambda cid: classes[cid].name if cid in classes else f"#{cid}"  # noqa: E731
    out["per_class"] = sorted(({**c, "class": name(c["class_id"])} for c in out["per_class"]),
                              key=lambda c: -c["noise"])
    out["pairs"] = [{**p, "a_name": name(p["a"]), "b_name": name(p["b"]),
                     "a_description": classes[p["a"]].description if p["a"] in classes else "",
                     "b_description": classes[p["b"]].description if p["b"] in classes else "",
                     "active": all(p[x] in classes and classes[p[x]].retired_version_id is None for x in "ab")}
                    for p in out["pairs"]]
    return out


def flag_counts(session: Session) -> dict:
    """{kind: {status: n}} for every kind."""
    out = {k: {"open": 0, "pending": 0, "resolved": 0, "cancelled": 0} for k in KINDS}
    resolutions: dict[str | None, int] = {}
    # The trigger-kept counters (migration 0013): grouping every flag took 207 ms with 315,000 of them.
    for kind, status, resolution, n in session.execute(
            select(FlagCount.kind, FlagCount.status, FlagCount.resolution, FlagCount.n).where(FlagCount.n != 0)):
        by_status = out.setdefault(kind, {})
        by_status[status] = by_status.get(status, 0) + n
        if status == "resolved":
            resolutions[resolution or None] = resolutions.get(resolution or None, 0) + n
    return {"by_kind": out, "resolutions": resolutions}


def _examples(groups: np.ndarray, ids: np.ndarray, mask: np.ndarray) -> tuple[int, int, list[list[int]]]:
    chosen = np.unique(groups[mask])
    members = [ids[groups == g][:EXAMPLE_MEMBERS].tolist() for g in chosen[:EXAMPLES]]
    return len(chosen), int(mask.sum()), members


def duplicate_report(session: Session) -> dict:
    """Exact (identical pHash) and near duplicates that cross sources or the latest snapshot's splits."""
    live = live_images(session)
    ids, classes, sources = live["ids"], live["classes"], live["sources"]
    if not len(ids):
        return {"images": 0, "rows": []}
    snapshot = session.scalars(select(Snapshot).order_by(Snapshot.id.desc()).limit(1)).first()
    splits = np.full(len(ids), -1, dtype=np.int64)
    if snapshot:
        code = case((SnapshotItem.split == "train", 0), (SnapshotItem.split == "val", 1), else_=2)
        rows = session.connection().execute(
            select(SnapshotItem.image_id, code).where(SnapshotItem.snapshot_id == snapshot.id)).all()
        if rows:
            image_ids, split_codes = (np.array(c, dtype=np.int64) for c in zip(*rows))
            inside = np.isin(image_ids, ids)
            splits[np.searchsorted(ids, image_ids[inside])] = split_codes[inside]
    rows = []
    for kind, distance in (("exact", 0), ("near", None)):
        groups = near_groups(session, live, **({} if distance is None else {"max_distance": distance}))
        sizes = np.bincount(groups, minlength=len(ids))[groups]
        in_group = sizes > 1
        conflicts = duplicates.label_conflicts(groups, classes)["conflict"]
        for what, mask in (("any", in_group), ("cross source", duplicates.crossing_groups(groups, sources)),
                           ("cross split", duplicates.crossing_groups(groups, splits) if snapshot else None),
                           ("label conflict", conflicts)):
            if mask is None:
                continue
            n_groups, n_images, examples = _examples(groups, ids, mask & in_group)
            rows.append({"kind": kind, "what": what, "groups": n_groups, "images": n_images, "examples": examples})
    return {"images": int(len(ids)), "snapshot": snapshot.name if snapshot else None, "rows": rows}


def quality_report(session: Session, settings) -> dict:
    """Everything the quality page shows. The whole-dataset parts (duplicates, hard cases, effective size) are
    live up to `settings.quality_live_max` images and the newest stored report above (app.quality.results):
    `as_of` is None when they are live, else {"job", "at", "since", "refreshing"} (job None: none stored yet,
    and those parts are None)."""
    whole = results.view(session, settings)
    health = whole["health"]
    counts = library_counts(session)
    return {
        "noise": noise_summary(session),
        "flags": flag_counts(session),
        "audits": audit_stats(session),
        "duplicates": whole["duplicates"],
        "effective": health["effective"] if health else None,
        "hard_cases": None if health is None else {
            "tagged": health["tags"]["tagged"], "share": health["tags"]["share"], "per_tag": health["tags"]["per_tag"],
            "total": health["total"], "unsure": sum(b["count"] for b in health["confidence"]["bins"][:-1]),
            "confident_at": health["definitions"]["confident_at"]},
        "library": {"images": counts["images"], "labelled": counts["labelled"],
                    "unlabelled": counts["images"] - counts["labelled"], "excluded": counts["excluded"]},
        "multi": taxonomy_mode(session) == MULTI,
        "source_trend": source_trend(session),
        "as_of": whole["as_of"],
    }
