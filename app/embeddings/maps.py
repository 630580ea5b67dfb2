"""The map's data: every analysed image's 2-D point with what the /map page colours and marks it by.

The points come from an analysis (its `xy`, computed in the worker); what the
page marks is read now, so a label given since the analysis shows at once:
the current class, an open flag, unlabelled, excluded, the source and the
split in the latest snapshot. Built from numpy arrays and a handful of
column queries (no ORM objects): 100,000 points in bench/map_api.py's time.

Two shapes: `items` (one object per image, the public contract) and
`columns` (one list per field, names indexed into small lists), which the
page reads: about a third of the bytes and no per-point objects to build.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.models import CurrentLabel, Flag, Image, Job, LabelClass, Snapshot, SnapshotItem, Source
from app.embeddings import analyses
from app.errors import InvalidInput, NotFound

ROUND = 4  # decimals of a coordinate as sent: 1e-4 of the map's [-1, 1] span is sub-pixel even at 100x zoom
STREAM_ROWS = 20_000
NO_MAP = ("No map yet: the map is drawn by an analysis of a model's embeddings. Train a model (or run an embed "
          "job) on the Jobs page; an analysis follows it on its own.")
SPLITS = ("train", "val", "test")


def map_analysis(session: Session, settings: Settings, job: int | None = None) -> analyses.Analysis:
    """The analysis `job` (default: the newest succeeded one) with its map; NotFound / InvalidInput otherwise."""
    if job is None:
        found = analyses.latest(session, settings)
        if found is None or not found.has("xy"):
            raise NotFound(NO_MAP)
        return found
    row = session.get(Job, job)
    if row is None:
        raise NotFound(f"no job {job}")
    if row.kind != analyses.KIND:
        raise InvalidInput(f"job {job} is a {row.kind} job, not an analysis: give an analyse job's id")
    if row.status != "succeeded":
        raise NotFound(f"analysis {job} has no map: it is {row.status}")
    found = analyses.of_job(settings, row)
    if not found.has("xy"):
        raise NotFound(f"analysis {job} has no map")
    return found


def rounded_xy(analysis: analyses.Analysis) -> np.ndarray:
    """The analysis' map coordinates exactly as the page receives them (float64, ROUND decimals)."""
    return np.round(np.asarray(analysis.array("xy"), dtype=np.float64), ROUND)


@dataclass
class MapData:
    job: int
    space: int
    ids: np.ndarray  # int64 (n,), sorted: the analysed images that still exist
    xy: np.ndarray  # float64 (n, 2), rounded
    class_id: np.ndarray  # int64 (n,), -1 none
    source_id: np.ndarray  # int64 (n,)
    unlabelled: np.ndarray  # bool (n,)
    excluded: np.ndarray  # bool (n,)
    flagged: np.ndarray  # bool (n,): an open flag of any kind
    split: np.ndarray  # int8 (n,): index into SPLITS, -1 not in the latest snapshot
    snapshot: int | None
    classes: dict[int, str]
    sources: dict[int, str]


def map_data(session: Session, settings: Settings, job: int | None = None) -> MapData:
    """Every image of the analysis with its point and its state now."""
    analysis = map_analysis(session, settings, job)
    ids, xy = np.asarray(analysis.ids, dtype=np.int64), rounded_xy(analysis)
    n = len(ids)
    state = np.full((n, 5), -1, dtype=np.int64)  # found, class, source, labelled, excluded
    if n:
        rows = session.execute(
            select(Image.id, CurrentLabel.class_id, Image.source_id, Image.labelled, Image.excluded)
            .outerjoin(CurrentLabel, CurrentLabel.image_id == Image.id)
            .where(Image.id >= int(ids[0]), Image.id <= int(ids[-1])).execution_options(yield_per=STREAM_ROWS))
        for chunk in rows.partitions(STREAM_ROWS):
            got = np.array([(i, -1 if c is None else c, s, bool(lab), bool(x)) for i, c, s, lab, x in chunk],
                           dtype=np.int64).reshape(-1, 5)
            at = np.searchsorted(ids, got[:, 0])
            ok = (at < n) & (ids[np.minimum(at, n - 1)] == got[:, 0])
            state[at[ok], 0], state[at[ok], 1:] = 1, got[ok, 1:]
    keep = state[:, 0] == 1  # an image deleted since the analysis (a restore) has no point
    ids, xy, state = ids[keep], xy[keep], state[keep]
    flagged = np.isin(ids, np.fromiter(session.scalars(
        select(Flag.image_id).where(Flag.status == "open").distinct()), dtype=np.int64))
    snapshot = session.scalar(select(func.max(Snapshot.id)))
    split = np.full(len(ids), -1, dtype=np.int8)
    if snapshot is not None:
        got = np.array(session.execute(select(SnapshotItem.image_id, SnapshotItem.split)
                                       .where(SnapshotItem.snapshot_id == snapshot)).all(), dtype=object)
        if len(got):
            at = np.searchsorted(ids, got[:, 0].astype(np.int64))
            ok = (at < len(ids)) & (ids[np.minimum(at, len(ids) - 1)] == got[:, 0].astype(np.int64))
            split[at[ok]] = [SPLITS.index(s) if s in SPLITS else -1 for s in got[ok, 1]]
    classes = dict(session.execute(select(LabelClass.id, LabelClass.name)).all())
    sources = dict(session.execute(select(Source.id, Source.name)).all())
    return MapData(job=analysis.job, space=analysis.space, ids=ids, xy=xy, class_id=state[:, 1],
                   source_id=state[:, 2], unlabelled=state[:, 3] == 0, excluded=state[:, 4] == 1, flagged=flagged,
                   split=split, snapshot=snapshot, classes=classes, sources=sources)


def as_items(data: MapData) -> dict:
    """The public shape: {"job", "space", "snapshot", "items": [{"image", "x", "y", "class", "source", "split",
    "flagged", "unlabelled", "excluded"}]}."""
    classes = [None if c < 0 else data.classes.get(int(c)) for c in data.class_id.tolist()]
    sources = [data.sources.get(int(s)) for s in data.source_id.tolist()]
    splits = [None if s < 0 else SPLITS[s] for s in data.split.tolist()]
    items = [{"image": i, "x": x, "y": y, "class": c, "source": s, "split": sp, "flagged": f, "unlabelled": u,
              "excluded": e}
             for i, (x, y), c, s, sp, f, u, e in zip(data.ids.tolist(), data.xy.tolist(), classes, sources, splits,
                                                    data.flagged.tolist(), data.unlabelled.tolist(),
                                                    data.excluded.tolist())]
    return {"job": data.job, "space": data.space, "snapshot": data.snapshot, "items": items}


def as_columns(data: MapData) -> dict:
    """The page's shape: one list per field; "class", "source" and "split" are indexes into "classes",
    "sources" and "splits" (-1: none), the marks 0 / 1."""
    class_ids = sorted(set(data.class_id[data.class_id >= 0].tolist()))
    source_ids = sorted(set(data.source_id.tolist()))
    class_at = {c: i for i, c in enumerate(class_ids)}
    source_at = {s: i for i, s in enumerate(source_ids)}
    return {
        "job": data.job, "space": data.space, "snapshot": data.snapshot,
        "classes": [data.classes.get(c, f"class {c}") for c in class_ids],
        "sources": [data.sources.get(s, f"source {s}") for s in source_ids],
        "splits": list(SPLITS),
        "image": data.ids.tolist(), "x": data.xy[:, 0].tolist(), "y": data.xy[:, 1].tolist(),
        "class": _index(data.class_id, class_at), "source": _index(data.source_id, source_at),
        "split": data.split.tolist(),
        "flagged": data.flagged.astype(np.int8).tolist(), "unlabelled": data.unlabelled.astype(np.int8).tolist(),
        "excluded": data.excluded.astype(np.int8).tolist(),
    }


def _index(values: np.ndarray, at: dict[int, int]) -> list[int]:
    if not len(values):
        return []
    keys = np.array(sorted(at), dtype=np.int64)
    if not len(keys):
        return [-1] * len(values)
    pos = np.searchsorted(keys, values)
    ok = (pos < len(keys)) & (keys[np.minimum(pos, len(keys) - 1)] == values)
    return np.where(ok, pos, -1).tolist()
