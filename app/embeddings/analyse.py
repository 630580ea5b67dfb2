"""The `analyse` job: one embedding space's kNN graph, outlier scores, neighbour evidence, diverse order, map.

Runs in the worker (no torch), after every train or embed job (config
{"space": N}). Stages, each timed in the job's metrics and reported through
the hooks (progress, cancel):

  knn        every image's K nearest (app.embeddings.knn): exact in bounded blocks, ANN above
  outliers   distance to the K-th nearest labelled image, a robust z-score within the image's class
             (app.embeddings.outliers)
  evidence   out-of-sample neighbour share per labelled image (app.embeddings.neighbours)
  diverse    k-center greedy order of the unlabelled images, mixed with uncertainty (app.embeddings.diversity)
  map        2-D projection of every image (app.embeddings.projection)
  index      the space's ANN index for similar-image search when it is large (app.embeddings.ann)

Results are written as the files app.embeddings.analyses names. Labels, exclusions
and predictions are read once, at the start: the analysis describes the dataset
as it was then. `after_analysis` turns the strongest outlier scores into flags.
"""

from __future__ import annotations

import logging
import time
from typing import ClassVar

import numpy as np
from sqlalchemy import select

from app.artifacts import job_dir, publish_file
from app.config import Settings
from app.db import asof, flagstate
from app.db.models import CurrentLabel, Flag, Image, Job, LabelClass, Prediction, Snapshot, SnapshotItem
from app.embeddings import analyses, ann, diversity, extend, files, knn, maps, neighbours, outliers, projection, similar
from app.embeddings.spaces import SPACE_KINDS
from app.errors import Cancelled, LoupeError, TrainingError

log = logging.getLogger("loupe.analyse")
STREAM_ROWS = 5_000
FEW_ROWS = 20_000  # up to this many images are read by id; more, as the range of ids they span
FLAG_NEIGHBOURS = 8  # neighbours a flag keeps as its evidence (the review strip shows 8)
KEPT = ("keep", "ambiguous")  # a reviewer's decision that the image stays as it is


class _Progress:
    """Stage fractions of the whole job, for the job page's bar."""

    SHARE: ClassVar[dict[str, float]] = {"load": 0.05, "knn": 0.3, "outliers": 0.2, "evidence": 0.1,
                                         "diverse": 0.15, "map": 0.15, "index": 0.05}

    def __init__(self, hooks):
        self.hooks, self.done, self.seconds = hooks, 0.0, {}
        self._stage, self._t = None, 0.0

    def stage(self, name: str) -> None:
        self.end()
        if self.hooks.cancelled():
            raise Cancelled()
        self._stage, self._t = name, time.perf_counter()
        self.hooks.progress(self.done, f"{name}")

    def within(self, fraction: float, detail: str = "") -> None:
        if self.hooks.cancelled():  # called between blocks of a long stage: a cancel stops it there
            raise Cancelled()
        self.hooks.progress(self.done + self.SHARE[self._stage] * min(max(fraction, 0.0), 1.0),
                            f"{self._stage} {detail}".strip())

    def end(self) -> None:
        if self._stage is not None:
            self.seconds[self._stage] = round(time.perf_counter() - self._t, 3)
            self.done += self.SHARE[self._stage]
            self._stage = None


def _state(session, ids: np.ndarray) -> dict[str, np.ndarray]:
    """Per space row: "class" (current class id, -1 none), "labelled", "excluded", "event" (-1 none),
    "source" (-1: the image is gone)."""
    n = len(ids)
    out = {"class": np.full(n, -1, dtype=np.int64), "labelled": np.zeros(n, dtype=bool),
           "excluded": np.ones(n, dtype=bool), "event": np.full(n, -1, dtype=np.int64),
           "source": np.full(n, -1, dtype=np.int64)}
    if n == 0:
        return out
    q = (select(Image.id, Image.labelled, Image.excluded, CurrentLabel.class_id, CurrentLabel.event_id,
                Image.source_id).outerjoin(CurrentLabel, CurrentLabel.image_id == Image.id))
    if n <= FEW_ROWS:  # a few images spread over the id range (the flagged ones): by id, not the range between
        chunks = (session.execute(q.where(Image.id.in_(ids[i:i + 1000].tolist()))).all()
                  for i in range(0, n, 1000))
    else:
        chunks = session.execute(q.where(Image.id >= int(ids[0]), Image.id <= int(ids[-1]))
                                 .order_by(Image.id).execution_options(yield_per=STREAM_ROWS)).partitions(STREAM_ROWS)
    for chunk in chunks:
        got = np.array([(i, bool(lab), bool(x), -1 if c is None else c, -1 if e is None else e, src)
                        for i, lab, x, c, e, src in chunk], dtype=np.int64).reshape(-1, 6)
        at = np.searchsorted(ids, got[:, 0])
        ok = (at < n) & (ids[np.minimum(at, n - 1)] == got[:, 0])
        at, got = at[ok], got[ok]
        out["labelled"][at], out["excluded"][at] = got[:, 1] > 0, got[:, 2] > 0
        out["class"][at], out["event"][at], out["source"][at] = got[:, 3], got[:, 4], got[:, 5]
    out["class"][~out["labelled"]] = -1  # a "none of these" label carries no class
    return out


def _model_job(session, space: Job) -> Job | None:
    """The model whose predictions go with this space: its own (a train space) or the latest one (embed)."""
    if space.kind == "train":
        return space
    from app.labelling.suggestions import latest_model_job

    return latest_model_job(session)


def _predictions(session, space: Job, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(predicted class id, -1 none; margin, NaN none) per space row, from the newest prediction of the model's
    family (its train job's suggestions and its later predict jobs')."""
    from app.labelling.suggestions import model_family

    n = len(ids)
    predicted, margin = np.full(n, -1, dtype=np.int64), np.full(n, np.nan, dtype=np.float32)
    model = _model_job(session, space)
    if model is None or n == 0:
        return predicted, margin
    family = model_family(session, model.id)
    snapshot = session.get(Snapshot, model.snapshot_id) if model.snapshot_id is not None else None
    frozen = [c["id"] for c in snapshot.classes] if snapshot is not None else []
    rows = session.execute(
        select(Prediction.image_id, Prediction.probs, Prediction.margin)
        .where(Prediction.job_id.in_(family), Prediction.role == "suggestion")
        .order_by(Prediction.job_id).execution_options(yield_per=STREAM_ROWS))
    for image_id, probs, m in rows:  # newer jobs come later and win
        at = int(np.searchsorted(ids, image_id))
        if at < n and ids[at] == image_id and probs:
            top = int(np.argmax(probs))
            predicted[at] = frozen[top] if top < len(frozen) else -1
            margin[at] = m
    return predicted, margin


def _oof(session, settings: Settings, space: Job) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(ids, unit rows, fold per row) of a train space's out-of-sample embeddings, or None when it has none."""
    if not (space.artifacts or {}).get("oof_embeddings"):
        return None
    ids, rows = files.load(*similar.local_files(settings, space, prefix="oof_"))
    fold = np.full(len(ids), -1, dtype=np.int64)
    found = session.execute(select(SnapshotItem.image_id, SnapshotItem.fold)
                            .where(SnapshotItem.snapshot_id == space.snapshot_id)
                            .execution_options(yield_per=STREAM_ROWS))
    for chunk in found.partitions(STREAM_ROWS):  # no dict of a million snapshot items: a chunk at a time
        got = np.array([(i, -1 if f is None else f) for i, f in chunk], dtype=np.int64).reshape(-1, 2)
        at = np.searchsorted(ids, got[:, 0])
        ok = (at < len(ids)) & (ids[np.minimum(at, max(len(ids) - 1, 0))] == got[:, 0])
        fold[at[ok]] = got[ok, 1]
    return ids, similar.normalise(rows), fold


def _evidence(session, settings, space: Job, ids, unit, state, progress) -> tuple[np.ndarray, np.ndarray]:
    """(share float32 (n,), out-of-sample neighbour ids int64 (n, K)) per space row."""
    n = len(ids)
    share = np.full(n, np.nan, dtype=np.float32)
    found = np.full((n, knn.K), -1, dtype=np.int64)
    labels = np.where(state["excluded"], -1, state["class"])
    if space.kind == "train":
        oof = _oof(session, settings, space)
        if oof is None:
            return share, found
        oof_ids, oof_unit, fold = oof
        at = np.searchsorted(ids, oof_ids)
        inside = (at < n) & (ids[np.minimum(at, n - 1)] == oof_ids)
        oof_labels = np.where(inside & (fold >= 0), labels[np.minimum(at, n - 1)], -1)
        s, nb = neighbours.out_of_sample(oof_ids, oof_unit, oof_labels, fold, progress=progress)
        share[at[inside]], found[at[inside], :nb.shape[1]] = s[inside], nb[inside]
        return share, found
    s, nb = neighbours.out_of_sample(ids, unit, labels, None, progress=progress)
    return s, np.pad(nb, ((0, 0), (0, knn.K - nb.shape[1])), constant_values=-1)


def run_job(db, settings: Settings, job_id: int, worker: str, hooks) -> dict:
    """Analyse the job's space; returns the keyword arguments of jobs.finish."""
    stages = _Progress(hooks)
    stages.stage("load")
    with db.reading() as s:
        job = s.get(Job, job_id)
        space_id = int((job.config or {}).get("space") or 0)
        space = s.get(Job, space_id)
        if space is None or space.kind not in SPACE_KINDS or space.status != "succeeded":
            raise TrainingError(f"job {space_id} is not a succeeded train or embed job: there is no space to analyse")
        try:
            index = similar.load_index(s, settings, space_id)
        except LoupeError as exc:  # its files are gone from the store
            raise TrainingError(exc.detail) from None
        if index is None:
            raise TrainingError(f"job {space_id} stored no embeddings (it predates them): nothing to analyse")
        ids, unit = index.ids, index.vectors
        seen = asof.stamp(s)  # before the labels are read: a label given meanwhile counts as "since"
        base = extend.base_for(s, settings, job, index)
        if base is None:
            state = _state(s, ids)
            predicted, margin = _predictions(s, space, ids)
            snapshot, split = maps.latest_split(s, ids)
    if base is not None:  # images embedded since the newest analysis, few enough to place into it
        return extend.run(db, settings, job_id, space, index, base, seen, hooks)
    n = len(ids)
    hooks.log(f"{worker} analyses the {space.kind} space of job {space_id}: {n} images, "
              f"{int(state['labelled'].sum())} labelled, {int(state['excluded'].sum())} excluded")
    folder = job_dir(settings, job_id)
    saved: dict[str, str] = {"ids": analyses.save(folder, "ids", ids)}

    stages.stage("knn")
    rows, dist, method = knn.graph(unit, knn.K, progress=lambda f: stages.within(f, f"{int(f * n)} of {n}"))
    saved["knn"], saved["knn_distance"] = analyses.save(folder, "knn", rows), analyses.save(folder, "knn_distance",
                                                                                              dist)

    stages.stage("outliers")
    reference = np.flatnonzero(state["labelled"] & ~state["excluded"])
    if len(reference) > knn.K:  # the labelled images (outliers.py says why); else every image
        ref_rows, ref_dist = knn.to_reference(unit, reference, knn.K, progress=stages.within)
    else:
        ref_rows, ref_dist = rows, dist
    saved["outlier_knn"] = analyses.save(folder, "outlier_knn", ref_rows)
    saved["outlier_knn_distance"] = analyses.save(folder, "outlier_knn_distance", ref_dist)
    distance = outliers.kth_distance(ref_dist)
    group = np.where(state["labelled"], state["class"], predicted)
    usual, scale, overall = outliers.robust_stats(distance, group, reference=~state["excluded"])
    z = outliers.z_score(distance, usual, scale)
    saved["outlier"] = analyses.save(folder, "outlier", z)
    saved["outlier_class"] = analyses.save(folder, "outlier_class", group)
    saved["outlier_usual"] = analyses.save(folder, "outlier_usual", usual)
    saved["outlier_scale"] = analyses.save(folder, "outlier_scale", scale)
    in_reference = np.zeros(n, dtype=bool)
    in_reference[reference] = len(reference) > knn.K  # all False: measured to every image (extend.py reads it)
    saved["outlier_reference"] = analyses.save(folder, "outlier_reference", in_reference)

    stages.stage("evidence")
    with db.reading() as s:
        share, found = _evidence(s, settings, space, ids, unit, state, progress=stages.within)
    saved["neighbour_share"] = analyses.save(folder, "neighbour_share", share)
    saved[neighbours.NEIGHBOURS] = analyses.save(folder, neighbours.NEIGHBOURS, found)

    stages.stage("diverse")
    candidates = np.flatnonzero(~state["labelled"] & ~state["excluded"])
    seeds = np.flatnonzero(state["labelled"] & ~state["excluded"])
    order = diversity.diverse_ids(ids, unit, candidates, seeds, margin[candidates], cancelled=hooks.cancelled,
                                  progress=stages.within)
    if hooks.cancelled():
        raise Cancelled()
    saved["diverse"] = analyses.save(folder, "diverse", order)

    stages.stage("map")
    saved["xy"] = analyses.save(folder, "xy", projection.project(unit, seed=0))
    saved.update(maps.save_state(folder, state, split))

    stages.stage("index")
    saved.update(ann.build_for_analysis(ids, unit, folder))
    stages.end()
    for path in saved.values():
        publish_file(settings, job_id, path)
    similar.clear_cache()  # the worker keeps no space in memory between jobs (a train job needs it more)

    labelled = state["labelled"] & ~state["excluded"]
    metrics = {"images": n, "labelled": int(labelled.sum()), "unlabelled": len(candidates),
               "excluded": int(state["excluded"].sum()), "k": knn.K, "knn": method,
               "over_outlier_cut": int(np.sum(np.nan_to_num(z, nan=-np.inf)[~state["excluded"]] >= outliers.Z_CUT)),
               "share_mean": None if not np.isfinite(share).any() else round(float(np.nanmean(share)), 4),
               "diverse": len(order), "seconds": stages.seconds, "stamp": seen,
               "outlier_overall": list(overall)}
    hooks.log(f"analysed in {sum(stages.seconds.values()):.1f} s: {stages.seconds}")
    return {"artifacts": {"space": space_id, "files": saved, "snapshot": snapshot}, "metrics": metrics,
            "device": "cpu",
            "message": f"done: {n} images analysed"}


def _load(job: Job, name: str) -> np.ndarray:
    # after_analysis runs in the worker that just wrote these files: they are here.
    return np.load(job.artifacts["files"][name], mmap_mode="r")


def after_analysis(db, job_id: int) -> dict | None:
    """Outlier flags from a succeeded analysis (commits): the strongest scores become flags of kind "outlier",
    open outlier flags this analysis does not raise again are cancelled. Returns counts, also recorded as the
    job's metrics["outlier_flags"]; never raises (a missed flag must not stop the worker's queue)."""
    try:
        return _flag_outliers(db, job_id)
    except Exception:
        log.exception("analysis %s: outlier flags failed", job_id)
        return None


def _flag_outliers(db, job_id: int) -> dict:

    with db.reading() as s:
        newer = s.scalar(select(Job.id).where(Job.kind == analyses.KIND, Job.status == "succeeded",
                                              Job.id > job_id).limit(1))
    if newer is not None:  # finished after a newer analysis: the newer one's flags stand
        skipped = {"skipped": f"analysis #{newer} is newer"}
        with db.writing() as s:
            job = s.get(Job, job_id)
            job.metrics = {**(job.metrics or {}), "outlier_flags": skipped}
            s.commit()
        return {"analysis": job_id, **skipped}
    with db.reading() as s:
        job = s.get(Job, job_id)
        space = int((job.artifacts or {}).get("space") or 0)
        ids, z = np.asarray(_load(job, "ids")), np.asarray(_load(job, "outlier"))
        over = np.flatnonzero(np.isfinite(z) & (z >= outliers.Z_CUT))
        knn_rows, knn_dist = _load(job, "outlier_knn"), _load(job, "outlier_knn_distance")
        group, usual = _load(job, "outlier_class"), _load(job, "outlier_usual")
        state = _state(s, ids[over]) if len(over) else {"excluded": np.zeros(0, bool), "event": np.zeros(0)}
        names = dict(s.execute(select(LabelClass.id, LabelClass.name)).all())
        labels_as_of = ((job.metrics or {}).get("stamp") or {}).get("at")  # the labels the scores were measured by
    counts = {"analysis": job_id, "over_cut": len(over), "created": 0, "updated": 0, "kept": 0,
              "cancelled": 0}
    eligible = np.zeros(len(ids), dtype=bool)
    eligible[over] = ~state["excluded"]  # excluded since: cancel_stale closes its flag
    chosen = outliers.to_flag(z, eligible)
    # Flag.score of every kind is in [0, 1], higher = surer (a mislabel's 1 - label quality, a duplicate's
    # disagreeing share), because /review orders all kinds by it together: a raw z of 3.5+ would put every
    # outlier before the surest mislabel. The score is the share of the space's images less strange; z stays
    # in the details.
    ranked = np.sort(z[np.isfinite(z)])
    event_of = dict(zip(ids[over].tolist(), state["event"].tolist()))
    with db.writing() as s:
        existing = s.scalars(select(Flag).where(Flag.kind == "outlier", (Flag.status == "open")
                                                | Flag.resolution.in_(KEPT)).order_by(Flag.id)).all()
        opened = {f.image_id: f for f in existing if f.status == "open"}
        kept = {f.image_id: f for f in existing if f.status != "open"}
        raised = set()
        for row in chosen.tolist():
            image_id, event = int(ids[row]), int(event_of[int(ids[row])])
            event = None if event < 0 else event
            previous = kept.get(image_id)
            if previous is not None and (previous.details or {}).get("label_event_id") == event:
                counts["kept"] += 1  # a reviewer kept this image with this label: not asked again
                continue
            nb = [int(r) for r in knn_rows[row] if r >= 0][:FLAG_NEIGHBOURS]
            cls = int(group[row])
            details = {"analysis": job_id, "space": space, "neighbours": [int(ids[r]) for r in nb],
                       "distances": [round(float(d), 4) for d in knn_dist[row][:len(nb)]],
                       "class": names.get(cls) if cls >= 0 else None,
                       "compared_with": "all" if cls < 0 else ("label" if event is not None else "prediction"),
                       "distance": round(float(outliers.kth_distance(knn_dist[row:row + 1])[0]), 4),
                       "usual": round(float(usual[row]), 4), "label_event_id": event, "z": round(float(z[row]), 4),
                       "labels_as_of": labels_as_of}
            score = round(float(np.searchsorted(ranked, z[row], side="left")) / max(len(ranked), 1), 6)
            raised.add(image_id)
            if image_id in opened:
                flag = opened[image_id]
                flag.score, flag.details = score, {**details, "first_analysis": (flag.details or {}).get(
                    "first_analysis", (flag.details or {}).get("analysis"))}
                counts["updated"] += 1
            else:
                s.add(flagstate.raised("outlier", image_id, score=score, details=details))
                counts["created"] += 1
        for image_id, flag in opened.items():
            if image_id not in raised:
                flagstate.cancel(flag, f"analysis #{job_id} no longer ranks the image among the outliers")
                counts["cancelled"] += 1
        job = s.get(Job, job_id)  # on the job page; and a sign for whoever waits that the flags are written
        job.metrics = {**(job.metrics or {}), "outlier_flags": {k: v for k, v in counts.items() if k != "analysis"}}
        s.commit()
    log.info("analysis %s: outlier flags %s", job_id, counts)
    return counts
