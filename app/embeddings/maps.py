"""The map's data: every analysed image's 2-D point with what the /map page colours and marks it by.

The points come from an analysis (its `xy`, computed in the worker), and are
as of that analysis (`as_of` says when, and how many images imported since are
not on the map). The colours and marks are current: the class, unlabelled,
excluded, the source and the split come from the state the analysis stored
beside its points (map_* files, read when it read the labels) with every label
and exclusion event made since its stamp applied (a handful of rows, not the
whole table); open flags are read now; the split is re-read only when a
snapshot was frozen since. An analysis without stored state (older jobs)
reads every row now, as before: 100,000 points cost 0.29 s of server CPU
(bench/map_api.py; 0.96 s of wall time on two cores shared with other work).

Three shapes: `items` (one object per image, the public contract; 13.5 MB and
0.58 CPU s at 100,000), `columns` (one list per field, names indexed into
small lists: 3.0 MB) and `binary` (the same columns as little-endian typed
arrays after a JSON header, which the page reads: 14 bytes a point, no list of
a million Python ints to build or a million numbers to parse; see as_binary).

bench/map_api.py at 1,000,000 points (SQLite, 1,000 label changes since the
analysis, load 2.5 on two cores): GET /map p95 11 ms; binary p50 60 ms, p95
66 ms, 70 ms of server CPU, 14.0 MB; columns 1.1 s and 29 MB; the server's
peak RSS 407 MB. The unchanging columns (ids, points, sources) are kept as
bytes per analysis in the process (_Static); each request copies the class
and marks, applies the changes since and lays the body out once.
"""

from __future__ import annotations

import json
import struct
import threading
from dataclasses import dataclass
from itertools import chain
from pathlib import Path

import numpy as np
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.db.models import (
    CurrentLabel,
    ExclusionEvent,
    Flag,
    Image,
    Job,
    LabelClass,
    LabelEvent,
    Snapshot,
    SnapshotItem,
    Source,
)
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
    static: _Static | None = None  # the stored analysis' unchanging columns, as the binary shape sends them


@dataclass(frozen=True)
class _Static:
    """What a stored analysis' map never changes: read from its files once per process (they never change)."""
    ids: np.ndarray
    xy: np.ndarray  # float64, rounded
    class_id: np.ndarray  # as the analysis read them; copied before the changes since are applied
    source_id: np.ndarray
    labelled: np.ndarray
    excluded: np.ndarray
    binary: dict  # the binary shape's unchanging columns ("image", "x", "y", "source") and "sources" (ids)


_static: dict[tuple, _Static] = {}
_static_lock = threading.Lock()
STATIC_KEPT = 2  # analyses' maps kept: the newest, and one more (a page open on the one before)


def _static_of(analysis: analyses.Analysis) -> _Static:
    key = (str(analysis.settings.data_dir), analysis.settings.store_url, analysis.job)
    with _static_lock:
        if key in _static:
            return _static[key]
    xy = rounded_xy(analysis)
    marks = np.asarray(analysis.array("map_marks"))
    ids = np.asarray(analysis.ids, dtype=np.int64)
    source_id = np.asarray(analysis.array("map_source"), dtype=np.int64)
    sources, source_index = _present(source_id)
    binary = {"image": ids.astype("<i4").tobytes(), "x": _fixed_array(xy[:, 0]).astype("<i2").tobytes(),
              "y": _fixed_array(xy[:, 1]).astype("<i2").tobytes(), "source": source_index.astype("<i2").tobytes(),
              "sources": sources}
    found = _Static(ids=ids, xy=xy, class_id=np.asarray(analysis.array("map_class"), dtype=np.int64),
                    source_id=source_id, labelled=(marks & MARK_LABELLED) > 0, excluded=(marks & MARK_EXCLUDED) > 0,
                    binary=binary)
    for array in (found.ids, found.xy, found.class_id, found.source_id, found.labelled, found.excluded):
        array.flags.writeable = False  # shared between requests: each copies what it changes
    with _static_lock:
        while len(_static) >= STATIC_KEPT:
            _static.pop(next(iter(_static)))
        _static[key] = found
    return found


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


STREAM_ROWS = 50_000  # rows read at a time where a whole table is read (bounded memory)
MARK_LABELLED, MARK_EXCLUDED = 1, 2  # bits of map_marks


def save_state(folder: Path, state: dict, split: np.ndarray) -> dict[str, str]:
    """The analysis' side: the colours and marks as it read them (analyse._state), beside its points."""
    marks = (state["labelled"].astype(np.uint8) * MARK_LABELLED) | (state["excluded"].astype(np.uint8) * MARK_EXCLUDED)
    return {"map_class": analyses.save(folder, "map_class", state["class"].astype(np.int32)),
            "map_source": analyses.save(folder, "map_source", state["source"].astype(np.int32)),
            "map_marks": analyses.save(folder, "map_marks", marks),
            "map_split": analyses.save(folder, "map_split", np.asarray(split, dtype=np.int8))}


def latest_split(session: Session, ids: np.ndarray) -> tuple[int | None, np.ndarray]:
    """(the latest snapshot's id or None, int8 split per row of `ids`: index into SPLITS, -1 not in it),
    read STREAM_ROWS at a time."""
    snapshot = session.scalar(select(func.max(Snapshot.id)))
    split = np.full(len(ids), -1, dtype=np.int8)
    if snapshot is None or not len(ids):
        return snapshot, split
    code = case(*((SnapshotItem.split == name, i) for i, name in enumerate(SPLITS)), else_=-1)
    last = 0
    while True:  # keyset pages: each one an index range scan, never the whole table in memory at once
        got = _ints(session, select(SnapshotItem.image_id, code)
                    .where(SnapshotItem.snapshot_id == snapshot, SnapshotItem.image_id > last)
                    .order_by(SnapshotItem.image_id).limit(STREAM_ROWS), 2)
        if not len(got):
            break
        at = np.searchsorted(ids, got[:, 0])
        ok = (at < len(ids)) & (ids[np.minimum(at, len(ids) - 1)] == got[:, 0])
        split[at[ok]] = got[ok, 1]
        last = int(got[-1, 0])
        if len(got) < STREAM_ROWS:
            break
    return snapshot, split


_splits: dict[tuple, np.ndarray] = {}  # (data dir, analysis, snapshot) -> split: one re-read per new snapshot
_splits_lock = threading.Lock()


def _split_now(session: Session, analysis: analyses.Analysis, ids: np.ndarray) -> tuple[int | None, np.ndarray]:
    snapshot = session.scalar(select(func.max(Snapshot.id)))
    stored = (analysis.files and analysis.has("map_split")
              and _recorded_snapshot(session, analysis) == snapshot)
    if stored:
        return snapshot, np.asarray(analysis.array("map_split"), dtype=np.int8)
    key = (str(analysis.settings.data_dir), analysis.job, snapshot)
    with _splits_lock:
        if key in _splits:
            return snapshot, _splits[key]
    snapshot, split = latest_split(session, ids)
    with _splits_lock:
        if len(_splits) >= 4:
            _splits.pop(next(iter(_splits)))
        _splits[key] = split
    return snapshot, split


def _recorded_snapshot(session: Session, analysis: analyses.Analysis) -> int | None:
    job = session.get(Job, analysis.job)
    return (job.artifacts or {}).get("snapshot") if job is not None else None


def map_data(session: Session, settings: Settings, job: int | None = None) -> MapData:
    """Every image of the analysis with its point and its state now."""
    analysis = map_analysis(session, settings, job)
    if analysis.stamp and all(analysis.has(n) for n in ("map_class", "map_source", "map_marks", "map_split")):
        return _stored_data(session, analysis)
    return _live_data(session, analysis)


def _stored_data(session: Session, analysis: analyses.Analysis) -> MapData:
    """The analysis' stored state with the labels and exclusions made since its stamp applied."""
    static = _static_of(analysis)
    ids, n = static.ids, len(static.ids)
    class_id, labelled, excluded = static.class_id.copy(), static.labelled.copy(), static.excluded.copy()
    stamp = analysis.stamp
    changed = (select(LabelEvent.image_id).where(LabelEvent.id > int(stamp.get("label_event") or 0))
               .union(select(ExclusionEvent.image_id).where(ExclusionEvent.id > int(stamp.get("exclusion") or 0))))
    if n:
        got = _ints(session, select(Image.id, func.coalesce(CurrentLabel.class_id, -1), Image.labelled,
                                    Image.excluded)
                    .outerjoin(CurrentLabel, CurrentLabel.image_id == Image.id)
                    .where(Image.id.in_(changed.scalar_subquery())), 4)
        at = np.searchsorted(ids, got[:, 0])
        ok = (at < n) & (ids[np.minimum(at, n - 1)] == got[:, 0])
        at, got = at[ok], got[ok]
        class_id[at], labelled[at], excluded[at] = got[:, 1], got[:, 2] > 0, got[:, 3] > 0
    class_id[~labelled] = -1  # as the live read: a label taken back (undo) leaves no class
    snapshot, split = _split_now(session, analysis, ids)
    return MapData(job=analysis.job, space=analysis.space, ids=ids, xy=static.xy, class_id=class_id,
                   source_id=static.source_id, unlabelled=~labelled, excluded=excluded,
                   flagged=_flagged(session, ids), split=split, snapshot=snapshot,
                   classes=dict(session.execute(select(LabelClass.id, LabelClass.name)).all()),
                   sources=dict(session.execute(select(Source.id, Source.name)).all()), static=static)


def _flagged(session: Session, ids: np.ndarray) -> np.ndarray:
    """bool per row of `ids`: an open flag of any kind (a binary search per flagged image, not per point)."""
    flagged = np.zeros(len(ids), dtype=bool)
    if not len(ids):
        return flagged
    open_ids = _ints(session, select(Flag.image_id).where(Flag.status == "open").distinct(), 1)[:, 0]
    at = np.searchsorted(ids, open_ids)
    ok = (at < len(ids)) & (ids[np.minimum(at, len(ids) - 1)] == open_ids)
    flagged[at[ok]] = True
    return flagged


def _live_data(session: Session, analysis: analyses.Analysis) -> MapData:
    """Every analysed image's state read now (an analysis that stored none: older jobs, tests' stored maps)."""
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
    snapshot, split = latest_split(session, ids)
    classes = dict(session.execute(select(LabelClass.id, LabelClass.name)).all())
    sources = dict(session.execute(select(Source.id, Source.name)).all())
    return MapData(job=analysis.job, space=analysis.space, ids=ids, xy=xy, class_id=state[:, 1],
                   source_id=state[:, 2], unlabelled=state[:, 3] == 0, excluded=state[:, 4] == 1,
                   flagged=_flagged(session, ids), split=split, snapshot=snapshot, classes=classes, sources=sources)


SINCE_CAP = 100_000  # label and exclusion events counted exactly up to here (bounded work per view)


def _count_since(session: Session, column, last: int) -> int:
    q = select(column).where(column > last).limit(SINCE_CAP + 1)
    return int(session.scalar(select(func.count()).select_from(q.subquery())))


def as_of(session: Session, analysis: analyses.Analysis) -> dict:
    """What a page says about the analysis' age: {"job", "space", "at" (when it read the labels; None for an
    analysis that did not record it), "extends" (the analysis an extension placed new images into), "since":
    {"labels", "exclusions", "images"} (label and exclusion events made since, SINCE_CAP + 1 when more; images
    imported since that are not on the map, NEWER_CAP + 1 when more), "refreshing" (an analyse job queued or
    running), "colours": "current" (stored state + the events since) or "live" (read now)}. The points and
    outlier scores are as of "at"; the colours and marks are current either way."""
    stamp = analysis.stamp or {}
    stored = bool(stamp) and analysis.has("map_class")
    since = {"labels": _count_since(session, LabelEvent.id, int(stamp.get("label_event") or 0)) if stamp else None,
             "exclusions": (_count_since(session, ExclusionEvent.id, int(stamp.get("exclusion") or 0))
                            if stamp else None),
             "images": newer_images(session, analysis)}
    refreshing = session.scalars(select(Job.id).where(Job.kind == analyses.KIND, Job.status.in_(("queued", "running")))
                                 .order_by(Job.id).limit(1)).first()
    return {"job": analysis.job, "space": analysis.space, "at": stamp.get("at"), "extends": analysis.extends,
            "placed_at": stamp.get("placed_at"), "since": since, "refreshing": refreshing,
            "colours": "current" if stored else "live"}


def as_items(data: MapData, when: dict | None = None) -> dict:
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
    return {"job": data.job, "space": data.space, "snapshot": data.snapshot, "as_of": when, "items": items}


def as_columns(data: MapData, when: dict | None = None) -> dict:
    """The page's shape: one list per field; "x" and "y" in units of 1 / "scale", "class", "source" and
    "split" indexes into "classes", "sources" and "splits" (-1: none), the marks 0 / 1."""
    class_ids = sorted(set(data.class_id[data.class_id >= 0].tolist()))
    source_ids = sorted(set(data.source_id.tolist()))
    class_at = {c: i for i, c in enumerate(class_ids)}
    source_at = {s: i for i, s in enumerate(source_ids)}
    return {
        "job": data.job, "space": data.space, "snapshot": data.snapshot, "as_of": when,
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
    return _index_array(values, at).tolist()


def _index_array(values: np.ndarray, at: dict[int, int]) -> np.ndarray:
    if not len(values):
        return np.zeros(0, dtype=np.int64)
    keys = np.array(sorted(at), dtype=np.int64)
    if not len(keys):
        return np.full(len(values), -1, dtype=np.int64)
    pos = np.searchsorted(keys, values)
    ok = (pos < len(keys)) & (keys[np.minimum(pos, len(keys) - 1)] == values)
    return np.where(ok, pos, -1)


# The binary shape's columns: name, dtype (little-endian). x and y fit int16: |x| <= 1 at 10**ROUND = 10,000.
BINARY_COLUMNS = (("image", "<i4"), ("x", "<i2"), ("y", "<i2"), ("class", "<i2"), ("source", "<i2"),
                  ("split", "i1"), ("marks", "u1"))
MARK_BITS = {"flagged": 1, "unlabelled": 2, "excluded": 4}  # the binary shape's "marks" column


def as_binary(data: MapData, when: dict | None = None) -> bytes:
    """The page's shape: a 4-byte little-endian header length, a JSON header (as `columns` without the lists,
    plus "n" and "columns": [{"name", "dtype", "offset"}], offsets from the start of the body, each a multiple
    of 4 so that a typed array can view it in place), then the columns. "marks" holds MARK_BITS. 14 bytes a
    point: 14 MB at 1,000,000."""
    class_ids, class_index = _present(data.class_id)
    marks = ((data.flagged.astype(np.uint8) * MARK_BITS["flagged"])
             | (data.unlabelled.astype(np.uint8) * MARK_BITS["unlabelled"])
             | (data.excluded.astype(np.uint8) * MARK_BITS["excluded"]))
    if data.static is not None:  # the unchanging columns as bytes already
        fixed, source_ids = data.static.binary, data.static.binary["sources"]
    else:
        source_ids, source_index = _present(data.source_id)
        fixed = {"image": data.ids, "x": _fixed_array(data.xy[:, 0]), "y": _fixed_array(data.xy[:, 1]),
                 "source": source_index}
    values = {**{k: fixed[k] for k in ("image", "x", "y", "source")}, "class": class_index, "split": data.split,
              "marks": marks}
    header = {"job": data.job, "space": data.space, "snapshot": data.snapshot, "as_of": when,
              "classes": [data.classes.get(c, f"class {c}") for c in class_ids],
              "sources": [data.sources.get(s, f"source {s}") for s in source_ids],
              "splits": list(SPLITS), "scale": 10**ROUND, "n": len(data.ids), "marks": MARK_BITS, "columns": []}
    blobs = [v if isinstance(v := values[name], bytes) else np.ascontiguousarray(v, dtype=dtype).tobytes()
             for name, dtype in BINARY_COLUMNS]
    # The header's length depends on the offsets it lists: lay the columns out after room for it, then pad the
    # header with spaces (JSON ignores trailing white space) to where the first column starts.
    room = 256
    while True:
        offset = _align(4 + room)
        header["columns"] = []
        for (name, dtype), blob in zip(BINARY_COLUMNS, blobs):
            header["columns"].append({"name": name, "dtype": dtype, "offset": offset})
            offset = _align(offset + len(blob))
        text = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
        if 4 + len(text) <= header["columns"][0]["offset"]:
            break
        room = len(text) + 64
    out = bytearray(offset)  # zeros: the padding between columns; each part copied into place once
    first = header["columns"][0]["offset"]
    out[:first] = struct.pack("<I", first - 4) + text.ljust(first - 4)
    for column, blob in zip(header["columns"], blobs):
        out[column["offset"]:column["offset"] + len(blob)] = blob
    return bytes(out)


def _present(values: np.ndarray) -> tuple[list[int], np.ndarray]:
    """(the distinct ids >= 0 in `values`, sorted; each value's index among them, -1 for -1): a count per id
    and a lookup table, two passes over the values and no sort (a sort of a million took 30 ms)."""
    shifted = np.asarray(values, dtype=np.int64) + 1  # -1 (none) -> 0
    if not len(shifted):
        return [], np.zeros(0, dtype=np.int64)
    counts = np.bincount(shifted)
    counts[0] = 0
    present = np.flatnonzero(counts)
    table = np.full(len(counts), -1, dtype=np.int32)
    table[present] = np.arange(len(present), dtype=np.int32)
    return (present - 1).tolist(), table[shifted]


def _fixed_array(values: np.ndarray) -> np.ndarray:
    return np.rint(np.asarray(values) * 10**ROUND).astype(np.int16)


def _align(offset: int) -> int:
    return (offset + 3) // 4 * 4


def _fixed(values: np.ndarray) -> list[int]:
    return np.rint(values * 10**ROUND).astype(np.int64).tolist()
