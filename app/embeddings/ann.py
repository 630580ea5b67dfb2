"""Approximate nearest neighbours: a saved HNSW index per large embedding space, and kNN graphs over a space.

Exact search (app.embeddings.similar.nearest) is one matrix-vector product
per query; it is kept up to exact_max(dim) rows. Above that the analyse job saves
an HNSW graph (faiss IndexHNSWFlat, inner product over unit rows = cosine)
with its results (build_for_analysis), and similar-image search loads it and
re-ranks the candidates it returns by their exact distance. The analysis'
kNN graph above GRAPH_EXACT_MAX comes from the same index (graph): one build.

Chosen by bench/similar.py (k=20, 200 queries one at a time, recall@20
against exact search, memory = the index's serialised size; 2 cores shared
with five other busy processes, load average 9-12, so times are pessimistic
and p95s jittery). "clustered" = 100 Gaussian clusters in a 24-d subspace of
256 (see the bench); "sheets" = the hard case, 1,000 overlapping clusters each
on a 16-d sheet of its own plus strong noise; "fmnist" = 70,000 real
Fashion-MNIST small-CNN embeddings.

  data / n         index                          build    p95 ms   recall   memory
  clustered 100k   exact numpy                    -        22.9     1        98 MiB
                   faiss HNSW M=16 efC=100 ef=64  20 s     0.26     1.000    111 MiB
                   faiss HNSW M=32 efC=100 ef=64  14 s     0.21     0.995    124 MiB
                   faiss IVF-Flat 1264 lists /16  12 s     0.28     1.000    100 MiB
                   hnswlib M=16 efC=100 ef=64     20 s     0.23     1.000    112 MiB
  fmnist 70k       exact numpy                    -        14.1     1        68 MiB
                   faiss HNSW M=16 efC=100 ef=32  17 s     0.18     0.998    78 MiB
                   faiss IVF-Flat 1058 lists /16  32 s     7.85     0.998    70 MiB
                   hnswlib M=16 efC=100 ef=32     31 s     0.18     0.998    78 MiB
  clustered 1M     exact numpy                    -        572      1        977 MiB
                   faiss HNSW M=16 efC=100 ef=32  1845 s   1.25     0.977    1114 MiB
                   faiss HNSW M=16 efC=100 ef=64  1845 s   16.5     0.993    1114 MiB
                   faiss HNSW M=16 efC=100 ef=128 1845 s   13.2     0.998    1114 MiB
                   faiss HNSW M=16 efC=40 ef=64   390 s    4.1      0.945    1114 MiB
                   faiss HNSW M=16 efC=40 ef=128  390 s    4.8      0.960    1114 MiB
                   faiss IVF-Flat 1000 lists /16  28 s     5.7      1.000    985 MiB
                   faiss IVF-Flat 1000 lists /64  28 s     14.1     1.000    985 MiB
  sheets 100k      exact numpy                    -        57.7     1        98 MiB
                   faiss HNSW M=16 efC=100 ef=64  150 s    0.51     0.974    111 MiB
                   faiss HNSW M=16 efC=100 ef=256 150 s    5.5      0.986    111 MiB
                   faiss IVF-Flat 316 lists /16   2 s      1.65     0.375    99 MiB
                   faiss IVF-Flat 316 lists /64   2 s      6.2      0.660    99 MiB
  clustered 100k   exact numpy                    -        66.0     1        195 MiB
   (512 dims)      faiss HNSW M=16 efC=100 ef=64  53 s     0.50     0.999    209 MiB

Choice: faiss HNSW, M=16, efConstruction=100, efSearch=64 (at least 2k+1 for
a search of k). HNSW and hnswlib are the same algorithm and measured alike;
faiss ships binary wheels for Linux, macOS and Windows (hnswlib installed
here only by compiling its sources). IVF-Flat builds 60x faster at 1M and
was perfect on the clustered set, but its recall depends on its k-means lists
matching the data: on the hard set it found 38-66 % of the neighbours where
HNSW found 97-99 %. A similar-images strip that silently misses half the
neighbours of some spaces is worse than a slow background build. M=16 holds 1M x 256
vectors in 1.1 GB (the vectors themselves are 0.98 GB) and reached the
1M target (p95 < 50 ms, recall >= 0.95) at every efSearch tried; efConstruction
40 builds faster but missed the recall target at efSearch 64 (0.945).

In the analyse job at 1M x 256 (bench/similar.py --graph, load average 3-5
on the 2 cores): 657 s for the build plus every row's 10 nearest (recall@10
0.983 on 500 rows against exact), then 4.1 s to save that same index for
search. The 1,845 s build above was at load 9-12.

EXACT_MAX = 100,000 rows at 256 dims: exact search there is 6.5 ms p95 on idle
cores and 23 ms on these busy ones, under the 50 ms target with room; at 1M it
is 67 ms idle and 572 ms busy. At 512 dims 100,000 rows took 66 ms busy
(HNSW: 53 s build, 0.5 ms, recall 0.999), so wider spaces get proportionally
fewer exact rows (exact_max). It matches GRAPH_EXACT_MAX, above which the
analysis builds this HNSW graph for its kNN anyway (knn.graph -> graph), so
saving it for search costs only a file write.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

EXACT_MAX = 100_000  # rows searched exactly at EXACT_DIM dims or fewer; above, through an ANN index (docstring)
EXACT_DIM = 256
GRAPH_EXACT_MAX = 100_000  # rows for which graph() computes the kNN exactly (knn.exact); knn.graph calls graph() above
M = 16  # HNSW links per node
EF_CONSTRUCTION = 100
EF_SEARCH = 64
ADD_ROWS = 50_000  # rows added to an index between two progress calls
INDEX_FILE = "ann-hnsw.faiss"
IDS_FILE = "ann-ids.npy"


Progress = Callable[[float], None]


def exact_max(dim: int) -> int:
    """Rows searched exactly at this width: EXACT_MAX up to EXACT_DIM dims, fewer in proportion above
    (an exact search costs rows x dims: a 1,280-d backbone's 100,000 rows cost five 256-d ones')."""
    return EXACT_MAX * EXACT_DIM // max(int(dim), EXACT_DIM)


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


def build(vectors: np.ndarray, progress: Progress | None = None):
    """An HNSW index over the unit rows of `vectors` (row i of the index is row i of vectors).

    Added ADD_ROWS at a time, `progress(done share)` after each: at a million rows the build takes minutes
    (the docstring's table), and a caller may raise from `progress` to stop it (a cancelled job).
    """
    import faiss

    unit = vectors if _is_unit(vectors) else _unit(vectors)
    index = faiss.IndexHNSWFlat(unit.shape[1], M, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = EF_CONSTRUCTION
    for start in range(0, len(unit), ADD_ROWS):
        index.add(unit[start:start + ADD_ROWS])
        if progress is not None:
            progress(min(len(unit), start + ADD_ROWS) / len(unit))
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


def _index_for(unit: np.ndarray, progress: Progress | None = None):
    global _last
    if _last is not None and _last[0] is unit:
        return _last[1]
    _last = None  # never two at once: each holds a copy of the vectors
    index = build(unit, progress)
    _last = (unit, index)
    return index


def graph(vectors: np.ndarray, k: int, progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(rows int32 (n, k), cosine distances float16 (n, k)): every row's k nearest other rows, nearest first.

    Exact up to GRAPH_EXACT_MAX rows, through an HNSW index above. k is cut to n - 1. `progress(share)`:
    the build is the first 80 %, the searches the rest.
    """
    n = len(vectors)
    k = min(k, n - 1)
    if k <= 0:
        return np.zeros((n, 0), dtype=np.int32), np.zeros((n, 0), dtype=np.float16)
    unit = vectors if _is_unit(vectors) else _unit(vectors)
    if n <= GRAPH_EXACT_MAX:
        from app.embeddings import knn

        return knn.exact(unit, k)
    index = _index_for(unit, None if progress is None else lambda f: progress(0.8 * f))
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
        if progress is not None:
            progress(0.8 + 0.2 * stop / n)
    return rows, dist


def _atomic(path: Path, write) -> str:
    temp = path.with_name(f".{path.name}.part")
    write(str(temp))
    os.replace(temp, path)
    return str(path)


def _save_npy(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would add ".npy" to a name that lacks it
        np.save(f, array)


def build_for_analysis(ids: np.ndarray, vectors: np.ndarray, folder: Path,
                       progress: Progress | None = None) -> dict[str, str]:
    """Build and save this space's similar-image index into `folder`: {name: path}, {} when exact search will do.

    Names: "ann_index" (the faiss index; its row i is ids[i]) and "ann_ids" (those ids, int64). The index
    graph() just built for the same matrix is reused, not built again.
    """
    global _last
    if len(ids) <= exact_max(np.shape(vectors)[1] if np.ndim(vectors) == 2 else 0):
        _last = None
        return {}
    import faiss

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    unit = vectors if _is_unit(vectors) else _unit(vectors)
    index = _index_for(unit, progress)
    _last = None  # the job is done with it
    ids = np.asarray(ids, dtype=np.int64)
    out = {"ann_ids": _atomic(folder / IDS_FILE, lambda p: _save_npy(p, ids))}
    out["ann_index"] = _atomic(folder / INDEX_FILE, lambda p: faiss.write_index(index, p))
    return out


def load(index_path: str | Path, ids_path: str | Path) -> tuple[object, np.ndarray]:
    """(faiss index, its ids) as saved by build_for_analysis."""
    import faiss

    return faiss.read_index(str(index_path)), np.load(ids_path)
