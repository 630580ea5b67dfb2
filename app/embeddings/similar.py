"""Similar images: exact nearest neighbours by cosine distance over a model's stored embeddings.

A model's embedding space is its train job's files plus those of the predict
jobs that later ran its model (images imported since), so "the job" of a
search is always a train job. The matrix is loaded once per process and kept,
L2-normalised in float32, in a small cache keyed by the data dir, the train
job and the exact set of member jobs: a new predict job changes the key (and
replaces the model's older entry), so the next search sees its images without
anyone invalidating anything by hand. Job files never change once written.
An embed job (a pretrained backbone) is a space of its own, with no predict jobs.

Exact search is one matrix-vector product, kept up to ann.exact_max(dim) rows
(bench/similar.py measures where it stops being fast enough). A larger space
is searched through the HNSW index its latest analysis saved (app.embeddings.ann):
the index proposes candidates, which are re-ranked by their exact distance
here; images embedded after that analysis (later predict jobs) are searched
exactly beside it. A space with no index yet is searched exactly: slower, never wrong.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.artifacts import artifact_path, file_key
from app.config import Settings
from app.db.models import CurrentLabel, Image, Job, LabelClass
from app.embeddings import analyses, ann, files
from app.embeddings.spaces import SPACE_KINDS
from app.errors import InvalidInput, NotFound
from app.labelling.suggestions import model_family

CACHE_SIZE = 2  # matrices kept: the latest model's, and one more (a search against an older job)
CHUNK = 65_536  # rows normalised at a time while loading
MAX_K = 200
LATEST_TRIED = 3  # train jobs looked at for an image when no job is named


@dataclass(frozen=True)
class Index:
    job: int  # the train job whose model made the embeddings
    ids: np.ndarray  # int64, sorted
    vectors: np.ndarray  # float32 (n, D), rows of unit length


@dataclass(frozen=True)
class Approx:
    """A space's saved ANN index, lined up with the Index it serves."""
    analysis: int  # the analyse job that built it
    index: object  # the faiss index; its row i is ann_ids[i]
    rows: np.ndarray  # int64: the Index row of each ANN row (-1: an image the space no longer holds)
    rest: np.ndarray  # int64: Index rows the ANN lacks (embedded since), searched exactly
    rest_vectors: np.ndarray  # their unit rows, copied once


_cache: OrderedDict[tuple, Index] = OrderedDict()
# id(Index) -> (that Index, the analysis read, its ANN or None when that could not be read)
_approx: OrderedDict[int, tuple[Index, int, Approx | None]] = OrderedDict()
_lock = threading.Lock()
log = logging.getLogger(__name__)


def nearest(vectors: np.ndarray, query: np.ndarray, k: int,
            exclude: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cosine distances) of the k rows nearest `query`, nearest first; `exclude` (a row) is skipped.

    `vectors` are unit rows and `query` a unit vector, so cosine distance is 1 - dot. Ties go to the lower row.
    """
    dist = 1.0 - vectors @ query.astype(np.float32)
    if exclude is not None:
        dist[exclude] = np.inf
    k = min(k, len(dist) - (exclude is not None))
    if k <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    part = np.argpartition(dist, k - 1)[:k] if k < len(dist) else np.arange(len(dist))
    order = part[np.lexsort((part, dist[part]))]
    return order, np.clip(dist[order], 0.0, 2.0)


def normalise(rows: np.ndarray) -> np.ndarray:
    """float32 unit rows (a zero row stays zero), converted CHUNK rows at a time from a memory map."""
    out = np.empty(rows.shape, dtype=np.float32)
    for start in range(0, len(rows), CHUNK):
        block = np.asarray(rows[start:start + CHUNK], dtype=np.float32)
        norm = np.linalg.norm(block, axis=1, keepdims=True)
        out[start:start + CHUNK] = block / np.where(norm > 0, norm, 1.0)
    return out


def _members(session: Session, model_job_id: int) -> list[Job]:
    """The train job and its later predict jobs that stored embeddings, newest first."""
    jobs = session.scalars(select(Job).where(Job.id.in_(model_family(session, model_job_id)))).all()
    return sorted((j for j in jobs if (j.artifacts or {}).get("embeddings")), key=lambda j: -j.id)


def local_files(settings: Settings, job: Job, prefix: str = "") -> tuple[Path, Path]:
    """The job's two embedding files on this machine (prefix "" or "oof_": the out-of-sample pair): where it
    ran, or copied once from a remote image store into the cache."""
    keys = (f"{prefix}embeddings", f"{prefix}embedding_ids")
    found = [artifact_path(settings, job, key) for key in keys]
    if all(p is not None for p in found):
        return found[0], found[1]
    from app.images import blobs

    store = blobs.for_settings(settings)
    out = []
    for key in keys:
        name = Path(job.artifacts[key]).name
        target = settings.cache_dir / "embeddings" / f"job-{job.id}" / name
        if not target.is_file():
            try:
                store.fetch(file_key(job.id, name), target)
            except FileNotFoundError:
                raise NotFound(f"the embeddings of job {job.id} are gone: no {name} in {store.url}") from None
        out.append(target)
    return out[0], out[1]


def load_index(session: Session, settings: Settings, model_job_id: int) -> Index | None:
    """The model's embeddings (its train job's and later predict jobs'), from the cache when unchanged."""
    members = _members(session, model_job_id)
    if not members:
        return None
    # The data dir and store are in the key: one process may serve several (tests do), each with its own job 1.
    # finished_at too: a database restored over this data dir may reuse job ids for other files.
    key = (str(settings.data_dir), settings.store_url, model_job_id,
           tuple((j.id, str(j.finished_at)) for j in members))
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    parts = [files.load(*local_files(settings, job)) for job in members]
    ids = np.concatenate([p[0] for p in parts])
    # An image embedded twice (a later predict job) keeps the newest row: np.unique keeps first occurrences.
    ids, first = np.unique(ids, return_index=True)
    if len(parts) == 1:
        vectors = parts[0][1]  # one file, sorted and unique already: normalised straight from the memory map
    else:
        vectors = np.concatenate([p[1] for p in parts])[first]
    index = Index(job=model_job_id, ids=ids, vectors=normalise(vectors))
    with _lock:
        for stale in [k for k in _cache if k[:3] == key[:3]]:
            del _cache[stale]  # an older member set of this model: superseded
        _cache[key] = index
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return index


def vectors_for(session: Session, settings: Settings, model_job_id: int,
                image_ids) -> tuple[np.ndarray, np.ndarray]:
    """(ids int64 sorted, unit float32 rows): the embeddings of those of `image_ids` that one space holds.

    Reads only those rows from the files' memory maps (a few candidate pairs need no million-row matrix);
    an image embedded twice keeps its newest row, as load_index does.
    """
    wanted = np.unique(np.asarray(list(image_ids), dtype=np.int64))
    found_ids, found_rows = [], []
    for job in _members(session, model_job_id):  # newest first
        if not len(wanted):
            break
        ids, rows = files.load(*local_files(settings, job))
        if not len(ids):
            continue
        at = np.minimum(np.searchsorted(ids, wanted), len(ids) - 1)
        hit = ids[at] == wanted
        found_ids.append(wanted[hit])
        found_rows.append(normalise(rows[at[hit]]))
        wanted = wanted[~hit]
    if not found_ids:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
    ids, rows = np.concatenate(found_ids), np.concatenate(found_rows)
    order = np.argsort(ids)
    return ids[order], rows[order]


def clear_cache() -> None:
    with _lock:
        _cache.clear()
        _approx.clear()


def load_approx(session: Session, settings: Settings, index: Index) -> Approx | None:
    """The ANN index for `index` from its space's latest analysis; None when exact search is what to do.

    None up to ann.exact_max(dim) rows, before any analysis has saved an index, and when the saved one cannot be
    read (logged): exact search is slower there, but right.
    """
    if len(index.ids) <= ann.exact_max(index.vectors.shape[1]):
        return None
    analysis = analyses.latest(session, settings, space=index.job)
    if analysis is None or not (analysis.has("ann_index") and analysis.has("ann_ids")):
        return None
    with _lock:
        held = _approx.get(id(index))
        if held is not None and held[0] is index and held[1] == analysis.job:
            _approx.move_to_end(id(index))
            return held[2]
    try:
        faiss_index, ann_ids = ann.load(analysis.path("ann_index"), analysis.path("ann_ids"))
    except (OSError, RuntimeError, NotFound) as exc:  # a file gone, or not a faiss index: faiss raises RuntimeError
        log.warning("similar images: the ANN index of analysis %s cannot be read (%s); searching exactly",
                    analysis.job, exc)
        approx = None
    else:
        at = np.minimum(np.searchsorted(index.ids, ann_ids), len(index.ids) - 1)
        rows = np.where(index.ids[at] == ann_ids, at, -1).astype(np.int64)
        covered = np.zeros(len(index.ids), dtype=bool)
        covered[rows[rows >= 0]] = True
        rest = np.flatnonzero(~covered)
        approx = Approx(analysis=analysis.job, index=faiss_index, rows=rows, rest=rest,
                        rest_vectors=index.vectors[rest])
    with _lock:
        _approx[id(index)] = (index, analysis.job, approx)
        while len(_approx) > CACHE_SIZE:
            _approx.popitem(last=False)
    return approx


def search(index: Index, approx: Approx | None, row: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(Index rows, cosine distances) of the k rows nearest row `row`, itself excluded, nearest first.

    Exact without `approx`; with it, the ANN's candidates (and the rows it lacks) re-ranked exactly.
    """
    query = index.vectors[row]
    if approx is None:
        return nearest(index.vectors, query, k, exclude=row)
    # 2k + 1: a few candidates may be images the space no longer holds, and more cost next to nothing.
    found, _ = ann.search(approx.index, query, 2 * k + 1)
    found = found[0][found[0] >= 0]
    candidates = approx.rows[found]
    if len(approx.rest):
        extra, _ = nearest(approx.rest_vectors, query, k + 1)
        candidates = np.concatenate([candidates, approx.rest[extra]])
    candidates = np.unique(candidates[(candidates >= 0) & (candidates != row)])
    dist = 1.0 - index.vectors[candidates] @ query
    order = np.lexsort((candidates, dist))[:k]  # nearest first; ties to the lower row, as nearest() does
    return candidates[order], np.clip(dist[order], 0.0, 2.0)


def _row(index: Index, image_id: int) -> int | None:
    at = int(np.searchsorted(index.ids, image_id))
    return at if at < len(index.ids) and index.ids[at] == image_id else None


def _model_job(session: Session, job_id: int) -> int:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    if job.kind == "predict":  # its vectors are in its model's space: search that whole space
        return int((job.config or {}).get("model_job") or 0)
    if job.kind not in SPACE_KINDS:
        raise InvalidInput(f"job {job_id} is a {job.kind} job; similar images need a train, embed or predict job")
    return job.id


def similar(session: Session, settings: Settings, image_id: int, *, k: int = 20, job: int | None = None) -> dict:
    """{"job", "items": [{"image", "distance", "class"}]}: the k images nearest `image_id`, itself excluded.

    `job` defaults to the latest succeeded train or embed job whose embeddings (with its predict jobs') cover the image.
    """
    if not 1 <= k <= MAX_K:
        raise InvalidInput(f"k must be from 1 to {MAX_K}, not {k}")
    if session.get(Image, image_id) is None:
        raise NotFound(f"no image {image_id}")
    if job is not None:
        index = load_index(session, settings, _model_job(session, job))
        if index is None:
            raise NotFound(f"job {job} has no embeddings (it did not succeed, or it predates them)")
        row = _row(index, image_id)
        if row is None:
            raise NotFound(f"job {job} has no embedding for image {image_id}: its model has not seen it")
    else:
        index, row = _latest_covering(session, settings, image_id)
    rows, dist = search(index, load_approx(session, settings, index), row, k)
    ids = index.ids[rows].tolist()
    names = dict(session.execute(
        select(CurrentLabel.image_id, LabelClass.name).join(LabelClass, LabelClass.id == CurrentLabel.class_id)
        .where(CurrentLabel.image_id.in_(ids))).all()) if ids else {}
    return {"job": index.job, "items": [{"image": i, "distance": round(float(d), 6), "class": names.get(i)}
                                        for i, d in zip(ids, dist.tolist())]}


def _latest_covering(session: Session, settings: Settings, image_id: int) -> tuple[Index, int]:
    # The few latest spaces only: each one tried is a matrix loaded, and older ones are rarely what is wanted.
    trains = session.scalars(select(Job.id).where(Job.kind.in_(SPACE_KINDS), Job.status == "succeeded")
                             .order_by(Job.id.desc()).limit(LATEST_TRIED)).all()
    for job_id in trains:
        index = load_index(session, settings, job_id)
        if index is not None and (row := _row(index, image_id)) is not None:
            return index, row
    raise NotFound(f"no embeddings cover image {image_id} yet: train a model (or let a predict job run "
                   "after its import) first")
