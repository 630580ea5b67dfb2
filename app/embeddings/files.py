"""A job's embeddings on disk: embeddings.npy (float16, one row per image) and embedding-ids.npy (int64).

A train job writes two such pairs. embeddings.npy: every image through the
final model, one space, what similar-image search reads (and what a predict
job extends with new images through the same model). oof-embeddings.npy:
each labelled image through the fold model that did not train on it, for
out-of-sample neighbour evidence; fold models are trained separately, so
their spaces do not line up (measured: all 10 nearest neighbours of an image
came from its own fold's rows), and a row there is comparable only with rows
of the same fold (the snapshot's fold column says which).

Rows are sorted by image id, so a lookup is a binary search and the vectors
file can be memory-mapped instead of read whole. Both are plain .npy files
beside model.pt in the job's folder (and beside it in a remote image store),
readable by anyone with numpy. No torch here: the web app reads these too.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

VECTORS = "embeddings.npy"
IDS = "embedding-ids.npy"
OOF = "oof-"  # file-name prefix of the out-of-sample pair (and "oof_" before its artifact keys)
DTYPE = np.float16  # half the bytes of float32; cosine neighbours do not notice the rounding
COPY_ROWS = 65_536  # rows copied at a time when compacting: memory stays flat


class Writer:
    """Writes the rows of known image ids in any order and any number of calls, straight to a memory map.

    The ids are known before the vectors (the job knows what it will embed), so the file is laid out once,
    sorted, and each chunk lands in place: a million images never sit in memory as vectors.
    """

    def __init__(self, folder: Path, ids, dim: int, prefix: str = ""):
        self.prefix = prefix  # "" or OOF
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.ids = np.unique(np.asarray(ids, dtype=np.int64))
        self.dim = int(dim)
        self.temp = self.folder / f".{prefix}{VECTORS}.part"
        self.rows = np.lib.format.open_memmap(self.temp, mode="w+", dtype=DTYPE, shape=(len(self.ids), self.dim))
        self.written = np.zeros(len(self.ids), dtype=bool)

    def write(self, ids, vectors) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return
        at = np.searchsorted(self.ids, ids)
        if (at >= len(self.ids)).any() or (self.ids[np.minimum(at, len(self.ids) - 1)] != ids).any():
            raise ValueError("an embedding for an image the writer was not told about")
        self.rows[at] = np.asarray(vectors, dtype=np.float32).astype(DTYPE)
        self.written[at] = True

    def finish(self) -> dict:
        """Publish the files (rows never written, e.g. unreadable images, are left out); returns their paths."""
        vectors, ids_path = self.folder / f"{self.prefix}{VECTORS}", self.folder / f"{self.prefix}{IDS}"
        keep = np.flatnonzero(self.written)
        self.rows.flush()
        if len(keep) < len(self.ids):
            compact = self.folder / f".{self.prefix}{VECTORS}.compact.part"
            out = np.lib.format.open_memmap(compact, mode="w+", dtype=DTYPE, shape=(len(keep), self.dim))
            for start in range(0, len(keep), COPY_ROWS):
                out[start:start + COPY_ROWS] = self.rows[keep[start:start + COPY_ROWS]]
            out.flush()
            del out
            self.temp.unlink()
            self.temp = compact
        del self.rows
        temp_ids = self.folder / f".{self.prefix}{IDS}.part"
        with open(temp_ids, "wb") as f:
            np.save(f, self.ids[keep])
        os.replace(temp_ids, ids_path)
        os.replace(self.temp, vectors)
        key = self.prefix.replace("-", "_")
        return {f"{key}embeddings": str(vectors), f"{key}embedding_ids": str(ids_path),
                f"{key}embedding_dim": self.dim, f"{key}embedded": len(keep)}

    def abort(self) -> None:
        self.rows = None
        self.temp.unlink(missing_ok=True)


def load(vectors: Path, ids: Path) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors memory-mapped read-only); ValueError when the two files do not belong together."""
    ids_arr = np.load(ids)
    rows = np.load(vectors, mmap_mode="r")
    if rows.ndim != 2 or len(rows) != len(ids_arr):
        raise ValueError(f"{vectors.name} has {rows.shape} rows for {len(ids_arr)} ids")
    return ids_arr, rows
