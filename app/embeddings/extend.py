"""An analysis extended, not recomputed: images embedded since its analysis get a point and an outlier score.

A predict job extends a train job's space with the images imported since
(app.training.predict writes their rows with the same model; similar.load_index
reads the train job's and its predict jobs' files as one space). After it,
the worker queues an analyse job with config {"space": N, "extend": true}.
When the space's newest analysis can be extended (it stored its outlier
statistics and reference, and the new images are at most EXTEND_MAX_SHARE of
it), that job places the new rows into a copy of it instead of analysing the
whole space again:

  knn, outlier   each new row's K nearest among every row, and among the rows
                 the base analysis measured outlier distances to (its labelled
                 images then), exactly (m x n dot products); z against the base's
                 statistics of the row's group (its label, else the model's guess)
  xy             the coordinate-wise median of the points of its K nearest
                 analysed images (a copy, distance ~0, takes the original's point)
  map state      the new rows' class, source, marks read now; the split re-read
  unchanged      every old row's numbers (its neighbours, scores, share); the
                 diverse order and the ANN index are the base's (borrowed, not
                 copied: similar.load_approx searches rows the index lacks exactly)

So a new row's outlier distance is exactly what a full analysis with the same
labelled images would measure (tests/embeddings/test_extend.py); its z differs
only by how much the new rows would have moved their group's median and MAD.
The labels stay the base's: the extension's stamp keeps the base's label and
exclusion events (the map says "as of" the base, N labels since) and records
when it placed the new images ("placed_at"). Past EXTEND_MAX_SHARE, or when the
base lacks what this needs, the job is a full analysis.

What "cheap" means, measured (bench/extend.py: clustered synthetic 256-d rows, two cores shared with other
work; CPU seconds, wall in brackets; the space's load from its files is the same for both kinds of job):

  space rows   new rows   extension               full analysis (bench/analyse.py)
    100,000      1,000      5.4 CPU s (9.6)         199 CPU s (361), PaCMAP half of it
    100,000      9,000     20.1 CPU s (31.7)
  1,000,000      1,000     22.9 CPU s (29.7), peak RSS 2.1 GB (the space's unit rows are 1 GB)

The exact search is about 2.2e-8 CPU s per (new row, space row) pair; rewriting the files ~5 s at 1,000,000.
A full analysis grows at least n log n (10x the rows: 2,000+ CPU s at 1,000,000, not run here). So an
extension is cheap while m x n stays under EXTEND_MAX_PAIRS (~450 CPU s: a quarter of a full analysis at a
million rows; 20,000 new images there) and the new rows are at most EXTEND_MAX_SHARE of the analysed ones.
"""

from __future__ import annotations

import time

import numpy as np

from app.artifacts import job_dir, publish_file
from app.config import Settings
from app.db.models import Job
from app.embeddings import analyses, knn, maps, outliers

# New rows at most this share of the base's: above it the new images would shape the map and the groups' statistics
# enough that they deserve a full analysis (whose layout places them with the rest), and the rows the ANN index
# lacks (searched exactly beside it) would grow past what similar-image search should scan. The cost: see the
# module docstring (bench/extend.py).
EXTEND_MAX_SHARE = 0.10
EXTEND_MAX_PAIRS = 2e10  # new rows x space rows searched exactly: ~450 CPU s at the measured 2.2e-8 s a pair
NEEDS = ("ids", "xy", "knn", "knn_distance", "outlier", "outlier_knn", "outlier_knn_distance", "outlier_class",
         "outlier_usual", "outlier_scale", "outlier_reference", "neighbour_share", "share_neighbours", "diverse",
         "map_class", "map_source", "map_marks", "map_split")
BORROWED = ("diverse", "ann_index", "ann_ids")  # files that new unlabelled images do not change
SAME_POINT = 1e-6  # cosine distance under which a new row is a copy of an analysed one: its point is that one's


def base_for(session, settings: Settings, job: Job, index) -> analyses.Analysis | None:
    """The analysis `job` (an analyse job asking to extend) extends, or None for a full analysis."""
    if not (job.config or {}).get("extend"):
        return None
    space = int((job.config or {}).get("space") or 0)
    base = analyses.latest(session, settings, space=space)
    if base is None or not base.stamp or not all(base.has(name) for name in NEEDS):
        return None
    base_job = session.get(Job, base.job)
    if "outlier_overall" not in (base_job.metrics or {}):
        return None
    ids = np.asarray(base.ids)
    at = np.minimum(np.searchsorted(index.ids, ids), max(len(index.ids) - 1, 0))
    if len(ids) and (not len(index.ids) or (index.ids[at] != ids).any()):
        return None  # an analysed image left the space: only a full analysis knows what to do
    new = len(index.ids) - len(ids)
    if new > EXTEND_MAX_SHARE * max(len(ids), 1) or new * len(index.ids) > EXTEND_MAX_PAIRS:
        return None
    return base


def place(base_xy: np.ndarray, rows: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """float32 (m, 2): each new row's point from its nearest analysed rows (`rows` index `base_xy`)."""
    rows = np.asarray(rows, dtype=np.int64)
    out = np.zeros((len(rows), 2), dtype=np.float32)
    for i, (r, d) in enumerate(zip(rows, np.asarray(dist, dtype=np.float32))):
        ok = r >= 0
        if not ok.any():
            continue
        if d[ok][0] <= SAME_POINT:
            out[i] = base_xy[r[ok][0]]
        else:
            out[i] = np.median(base_xy[r[ok]], axis=0)
    return out


def _group_stats(base: analyses.Analysis, overall: tuple[float, float]) -> dict[int, tuple[float, float]]:
    group = np.asarray(base.array("outlier_class"), dtype=np.int64)
    _, first = np.unique(group, return_index=True)
    usual, scale = base.array("outlier_usual"), base.array("outlier_scale")
    stats = {int(group[i]): (float(usual[i]), float(scale[i])) for i in first}
    stats.setdefault(-1, overall)
    return stats


def run(db, settings: Settings, job_id: int, space: Job, index, base: analyses.Analysis, seen: dict, hooks) -> dict:
    """Extend `base` with the rows of `index` it lacks; returns the keyword arguments of jobs.finish."""
    from app.embeddings.analyse import _predictions, _state

    start = time.perf_counter()
    ids, unit = index.ids, index.vectors
    base_ids = np.asarray(base.ids)
    pos_base = np.searchsorted(ids, base_ids)  # base_for checked every base id is in the space
    is_new = np.ones(len(ids), dtype=bool)
    is_new[pos_base] = False
    new_rows = np.flatnonzero(is_new)
    new_ids = ids[new_rows]
    m, n = len(new_rows), len(ids)
    hooks.log(f"extends analysis #{base.job}: {m} images embedded since it, {len(base_ids)} analysed")
    hooks.progress(0.05, f"placing {m} new images")
    with db.reading() as s:
        state = _state(s, new_ids)
        predicted, _ = _predictions(s, space, new_ids)
        snapshot, split = maps.latest_split(s, ids)
        base_job = s.get(Job, base.job)
        overall = tuple(base_job.metrics["outlier_overall"])

    everyone = np.ones(n, dtype=bool)
    in_base = ~is_new
    reference = np.zeros(n, dtype=bool)
    reference[pos_base[np.asarray(base.array("outlier_reference"), dtype=bool)]] = True

    def within(fraction: float) -> None:
        if hooks.cancelled():
            from app.errors import Cancelled

            raise Cancelled()
        hooks.progress(0.05 + 0.75 * fraction, f"placing {m} new images")

    pools = [everyone, in_base] + ([reference] if reference.any() else [])
    found = knn.among(unit, new_rows, knn.K, pools, progress=within)
    (rows, dist), (to_base, to_base_d) = found[0], found[1]
    # The base measured every image against every image when it had too few labelled ones: so do the new rows.
    ref_rows, ref_dist = found[2] if len(found) > 2 else (rows, dist)
    hooks.progress(0.8, "outlier scores")
    distance = outliers.kth_distance(ref_dist)
    group = np.where(state["labelled"], state["class"], predicted)
    stats = _group_stats(base, overall)
    usual = np.array([stats.get(int(g), overall)[0] for g in group], dtype=np.float32)
    scale = np.array([stats.get(int(g), overall)[1] for g in group], dtype=np.float32)
    z = outliers.z_score(distance, usual, scale)
    xy = place(np.asarray(base.array("xy")), np.where(to_base >= 0, np.searchsorted(pos_base, to_base), -1),
               to_base_d)

    hooks.progress(0.85, "writing")
    folder = job_dir(settings, job_id)

    def merged(name: str, new_values, remap: bool = False) -> str:
        old = np.asarray(base.array(name))
        if remap:  # row numbers of the base: where those rows are now
            old = np.where(old >= 0, pos_base[np.maximum(old, 0)], -1).astype(old.dtype)
        out = np.empty((n, *old.shape[1:]), dtype=old.dtype)
        out[pos_base], out[new_rows] = old, np.asarray(new_values).astype(old.dtype)
        return analyses.save(folder, name, out)

    saved = {"ids": analyses.save(folder, "ids", ids), "xy": merged("xy", xy),
             "knn": merged("knn", rows, remap=True), "knn_distance": merged("knn_distance", dist),
             "outlier": merged("outlier", z), "outlier_knn": merged("outlier_knn", ref_rows, remap=True),
             "outlier_knn_distance": merged("outlier_knn_distance", ref_dist),
             "outlier_class": merged("outlier_class", group), "outlier_usual": merged("outlier_usual", usual),
             "outlier_scale": merged("outlier_scale", scale),
             "outlier_reference": merged("outlier_reference", np.zeros(m, dtype=bool)),
             "neighbour_share": merged("neighbour_share", np.full(m, np.nan, dtype=np.float32)),
             "share_neighbours": merged("share_neighbours", np.full((m, knn.K), -1, dtype=np.int64)),
             "map_class": merged("map_class", state["class"]), "map_source": merged("map_source", state["source"]),
             "map_marks": merged("map_marks", (state["labelled"].astype(np.uint8) * maps.MARK_LABELLED)
                                 | (state["excluded"].astype(np.uint8) * maps.MARK_EXCLUDED)),
             "map_split": analyses.save(folder, "map_split", split)}
    for path in saved.values():
        publish_file(settings, job_id, path)
    borrowed = {name: base.borrowed.get(name, base.job) for name in BORROWED if base.has(name)}
    files = {**saved, **{name: base.files[name] for name in borrowed}}
    stamp = {**base.stamp, "image": int(ids[-1]) if n else 0, "placed_at": seen["at"]}
    took = round(time.perf_counter() - start, 3)
    z_finite = np.nan_to_num(z, nan=-np.inf)[~state["excluded"]]
    metrics = {"images": n, "placed": m, "extends": base.job, "k": knn.K, "knn": "exact",
               "over_outlier_cut": int((base_job.metrics or {}).get("over_outlier_cut", 0))
               + int(np.sum(z_finite >= outliers.Z_CUT)),
               "seconds": {"extend": took}, "stamp": stamp, "outlier_overall": list(overall)}
    hooks.log(f"placed {m} images into analysis #{base.job} in {took:.1f} s")
    return {"artifacts": {"space": space.id, "files": files, "snapshot": snapshot, "borrowed": borrowed,
                          "extends": base.job},
            "metrics": metrics, "device": "cpu",
            "message": f"done: {m} new images placed into analysis #{base.job} ({n} in all)"}
