"""The map's data: every analysed image's 2-D point with what the /map page colours and marks it by.

The points come from an analysis (its `xy`, computed in the worker); what the
page marks is read now, so a label given since the analysis shows at once:
the current class, an open flag, unlabelled, excluded, the source and the
split in the latest snapshot. Built from numpy arrays and a handful of
column queries (no ORM objects): 100,000 points cost 0.29 s of server CPU
(bench/map_api.py; 0.96 s of wall time on two cores shared with other work).

Two shapes: `items` (one object per image, the public contract; 13.5 MB and
0.58 CPU s at 100,000) and `columns` (one list per field, names indexed into
small lists), which the page reads: 3.0 MB and no per-point objects to build.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

import numpy as np
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.models import CurrentLabel, Flag, Image, Job, LabelClass, Snapshot, SnapshotItem, Source
from app.embeddings import analyses
from app.errors import InvalidInput, NotFound

ROUND = 4  # decimals of a coordinate as sent: 1e-4 of the map's [-1, 1] span is sub-pixel even at 100x zoom
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


NEWER_CAP = 1_000  # counted exactly up to here; "1,000+" past it (bounded work for the page)


def newer_images(session: Session, analysis: analyses.Analysis) -> int:
    """Images imported after the analysed ones (not excluded), so not on its map: NEWER_CAP + 1 when more.
    Ids grow with imports, so it is an index range past the analysis' last id."""
    ids = analysis.ids
    last = int(ids[-1]) if len(ids) else 0
    q = select(Image.id).where(Image.id > last, Image.excluded == False).limit(NEWER_CAP + 1)  # noqa: E712
    return int(session.scalar(select(func.count()).select_from(q.subquery())))


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


def _ints(session: Session, q, width: int) -> np.ndarray:
    """int64 (rows, width) of a query of integer (or boolean) columns, read through the DBAPI cursor.

    SQLAlchemy's Row objects cost about 20 us a row to make and again to unpack: 100,000 rows took 3.4 s of a
    5.5 s answer on two busy cores (bench/map_api.py); plain tuples into np.fromiter take a tenth of that.
    The queries carry no user input (ids and literals only), so they are compiled with their values inline.
    """
    sql = str(q.compile(dialect=session.get_bind().dialect, compile_kwargs={"literal_binds": True}))
    cursor = session.connection().connection.cursor()
    try:
        cursor.execute(sql)
        rows = cursor.fetchall()
    finally:
        cursor.close()
    return np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=len(rows) * width).reshape(-1, width)


def map_data(session: Session, settings: Settings, job: int | None = None) -> MapData:
    """Every image of the analysis with its point and its state now."""
    analysis = map_analysis(session, settings, job)
    ids, xy = np.asarray(analysis.ids, dtype=np.int64), rounded_xy(analysis)
    n = len(ids)
    state = np.full((n, 5), -1, dtype=np.int64)  # found, class, source, labelled, excluded
    if n:
        got = _ints(session, select(Image.id, func.coalesce(CurrentLabel.class_id, -1), Image.source_id,
                                    Image.labelled, Image.excluded)
                    .outerjoin(CurrentLabel, CurrentLabel.image_id == Image.id)
                    .where(Image.id >= int(ids[0]), Image.id <= int(ids[-1])), 5)
        at = np.searchsorted(ids, got[:, 0])
        ok = (at < n) & (ids[np.minimum(at, n - 1)] == got[:, 0])
        state[at[ok], 0], state[at[ok], 1:] = 1, got[ok, 1:]
    keep = state[:, 0] == 1  # an image deleted since the analysis (a restore) has no point
    ids, xy, state = ids[keep], xy[keep], state[keep]
    flagged = np.isin(ids, _ints(session, select(Flag.image_id).where(Flag.status == "open").distinct(), 1)[:, 0])
    snapshot = session.scalar(select(func.max(Snapshot.id)))
    split = np.full(len(ids), -1, dtype=np.int8)
    if snapshot is not None and len(ids):
        code = case(*((SnapshotItem.split == name, i) for i, name in enumerate(SPLITS)), else_=-1)
        got = _ints(session, select(SnapshotItem.image_id, code).where(SnapshotItem.snapshot_id == snapshot), 2)
        at = np.searchsorted(ids, got[:, 0])
        ok = (at < len(ids)) & (ids[np.minimum(at, len(ids) - 1)] == got[:, 0])
        split[at[ok]] = got[ok, 1]
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
    """The page's shape: one list per field; "x" and "y" in units of 1 / "scale", "class", "source" and
    "split" indexes into "classes", "sources" and "splits" (-1: none), the marks 0 / 1."""
    class_ids = sorted(set(data.class_id[data.class_id >= 0].tolist()))
    source_ids = sorted(set(data.source_id.tolist()))
    class_at = {c: i for i, c in enumerate(class_ids)}
    source_at = {s: i for i, s in enumerate(source_ids)}
    return {
        "job": data.job, "space": data.space, "snapshot": data.snapshot,
        "classes": [data.classes.get(c, f"class {c}") for c in class_ids],
        "sources": [data.sources.get(s, f"source {s}") for s in source_ids],
        "splits": list(SPLITS),
        # Integers: a third of the bytes of the floats and a fifth of the time to write. x / scale is the
        # very float the items give (np.round divides the same integer by 10**ROUND, as does the page).
        "scale": 10**ROUND, "x": _fixed(data.xy[:, 0]), "y": _fixed(data.xy[:, 1]),
        "image": data.ids.tolist(),
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


def _fixed(values: np.ndarray) -> list[int]:
    return np.rint(values * 10**ROUND).astype(np.int64).tolist()
