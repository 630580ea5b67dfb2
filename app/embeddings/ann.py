"""Approximate nearest neighbours: a saved HNSW index per embedding space, and kNN graphs over a whole space.

Exact search (app.embeddings.similar.nearest) is one matrix-vector product
per query; it is kept up to EXACT_MAX rows. Above that an analyse job builds
an HNSW graph (faiss IndexHNSWFlat, inner product over unit rows = cosine)
and saves it with the analysis; similar-image search loads it and re-ranks
the candidates it returns by their exact distance.

PROVISIONAL parameters until bench/similar.py has measured them (see below).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

EXACT_MAX = 200_000  # rows searched exactly; above, through the space's ANN index
GRAPH_EXACT_MAX = 50_000  # rows for which graph() computes the kNN exactly (blocked matrix products)
M = 32  # HNSW links per node
EF_CONSTRUCTION = 80
EF_SEARCH = 96
INDEX_FILE = "ann-hnsw.faiss"
IDS_FILE = "ann-ids.npy"


def _unit(vectors: np.ndarray) -> np.ndarray:
    """float32 unit rows, C-contiguous (faiss wants them so); zero rows stay zero."""
    out = np.ascontiguousarray(vectors, dtype=np.float32)
    if out is vectors:
        out = out.copy()
    norm = np.linalg.norm(out, axis=1, keepdims=True)
    out /= np.where(norm > 0, norm, 1.0)
    return out


def _is_unit(vectors: np.ndarray) -> bool:
    """Already float32, C-ordered unit rows (what similar.load_index holds): used as they are, not copied."""
    if vectors.dtype != np.float32 or not vectors.flags.c_contiguous or not len(vectors):
        return False
    norms = np.linalg.norm(vectors[:: max(1, len(vectors) // 256)], axis=1)
    return bool(np.all((np.abs(norms - 1) < 1e-3) | (norms == 0)))


def build(vectors: np.ndarray):
    """An HNSW index over the unit rows of `vectors` (row i of the index is row i of vectors)."""
    import faiss

    unit = vectors if _is_unit(vectors) else _unit(vectors)
    index = faiss.IndexHNSWFlat(unit.shape[1], M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = EF_CONSTRUCTION
    index.add(unit)
    index.hnsw.efSearch = EF_SEARCH
    return index


def search(index, queries: np.ndarray, k: int, ef: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rows int64 (q, k), cosine distances float32 (q, k)) of each query's k nearest indexed rows; -1 pads.

    efSearch goes with the call, not into the index: the web app searches one index from several threads.
    """
    import faiss

    params = faiss.SearchParametersHNSW(efSearch=max(ef or EF_SEARCH, k))
    sims, rows = index.search(_unit(np.atleast_2d(queries)), k, params=params)
    return rows, np.clip(1.0 - sims, 0.0, 2.0).astype(np.float32)


# The index graph() built last, with the matrix it was built from: the analyse job asks for the graph and
# then for the saved index of the same rows, and at a million rows one build is minutes of the job.
_last: tuple[np.ndarray, object] | None = None


def _index_for(unit: np.ndarray):
    global _last
    if _last is not None and _last[0] is unit:
        return _last[1]
    _last = None  # never two at once: each holds a copy of the vectors
    index = build(unit)
    _last = (unit, index)
    return index


def graph(vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows int32 (n, k), cosine distances float16 (n, k)): every row's k nearest other rows, nearest first.

    Exact up to GRAPH_EXACT_MAX rows, through an HNSW index above. k is cut to n - 1.
    """
    n = len(vectors)
    k = min(k, n - 1)
    if k <= 0:
        return np.zeros((n, 0), dtype=np.int32), np.zeros((n, 0), dtype=np.float16)
    unit = vectors if _is_unit(vectors) else _unit(vectors)
    if n <= GRAPH_EXACT_MAX:
        from app.embeddings import knn

        return knn.exact(unit, k)
    index = _index_for(unit)
    rows = np.empty((n, k), dtype=np.int32)
    dist = np.empty((n, k), dtype=np.float16)
    for start in range(0, n, 65_536):
        stop = min(n, start + 65_536)
        found, d = search(index, unit[start:stop], k + 1, ef=max(EF_SEARCH, 2 * k))
        # Drop the row itself; where a copy of it (distance 0 too) pushed it out, drop the farthest instead.
        drop = found == np.arange(start, stop)[:, None]
        drop[~drop.any(axis=1), -1] = True
        rows[start:stop] = found[~drop].reshape(stop - start, k)
        dist[start:stop] = d[~drop].reshape(stop - start, k)
    return rows, dist


def _atomic(path: Path, write) -> str:
    temp = path.with_name(f".{path.name}.part")
    write(str(temp))
    os.replace(temp, path)
    return str(path)


def _save_npy(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would add ".npy" to a name that lacks it
        np.save(f, array)


def build_for_analysis(ids: np.ndarray, vectors: np.ndarray, folder: Path) -> dict[str, str]:
    """Build and save this space's similar-image index into `folder`: {name: path}, {} when exact search will do.

    Names: "ann_index" (the faiss index; its row i is ids[i]) and "ann_ids" (those ids, int64).
    """
    global _last
    if len(ids) <= EXACT_MAX:
        _last = None
        return {}
    import faiss

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    unit = vectors if _is_unit(vectors) else _unit(vectors)
    index = _index_for(unit)
    _last = None  # the job is done with it
    ids = np.asarray(ids, dtype=np.int64)
    out = {"ann_ids": _atomic(folder / IDS_FILE, lambda p: _save_npy(p, ids))}
    out["ann_index"] = _atomic(folder / INDEX_FILE, lambda p: faiss.write_index(index, p))
    return out


def load(index_path: str | Path, ids_path: str | Path) -> tuple[object, np.ndarray]:
    """(faiss index, its ids) as saved by build_for_analysis."""
    import faiss

    return faiss.read_index(str(index_path)), np.load(ids_path)
