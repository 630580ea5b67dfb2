"""Similar-image query time with exact numpy search, and the bytes an embedding costs per image.

Random float16 vectors of the stored dimension (256: the default smallcnn's
penultimate layer) are written with the worker's own writer
(app.embeddings.files), loaded and normalised as the app loads them
(app.embeddings.similar.normalise), then queried one image at a time as
GET /api/images/{id}/similar does (app.embeddings.similar.nearest, k=20).
Prints one line: p95 per query at 100,000 and 1,000,000 images, and bytes per
image on disk (vectors + ids) and in the app's cache (float32 matrix).

Run: .venv/bin/python bench/similar.py [DIM] [QUERIES]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.embeddings import files, similar  # noqa: E402

TARGET_MS = 50.0
WRITE_ROWS = 65_536


def one_size(n: int, dim: int, queries: int, rng: np.random.Generator) -> tuple[float, float, float]:
    """(p95 ms, bytes per image on disk, bytes per image in memory) for n random vectors."""
    with tempfile.TemporaryDirectory() as tmp:
        writer = files.Writer(Path(tmp), np.arange(1, n + 1), dim)
        for start in range(0, n, WRITE_ROWS):  # chunk by chunk, as the worker writes them
            stop = min(n, start + WRITE_ROWS)
            writer.write(np.arange(start + 1, stop + 1), rng.standard_normal((stop - start, dim), dtype=np.float32))
        info = writer.finish()
        disk = sum(Path(info[k]).stat().st_size for k in ("embeddings", "embedding_ids")) / n
        ids, rows = files.load(Path(info["embeddings"]), Path(info["embedding_ids"]))
        vectors = similar.normalise(rows)
        del rows
    times = []
    for q in rng.integers(0, n, queries):
        t0 = time.perf_counter()
        similar.nearest(vectors, vectors[q], 20, exclude=int(q))
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.percentile(times, 95)), disk, vectors.nbytes / n + ids.nbytes / n


def main() -> None:
    dim = int(sys.argv[1]) if len(sys.argv) > 1 else 256
    queries = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    rng = np.random.default_rng(0)
    out = {}
    for n in (100_000, 1_000_000):
        out[n] = one_size(n, dim, queries, rng)
    p95 = {n: v[0] for n, v in out.items()}
    verdict = "under" if max(p95.values()) < TARGET_MS else "OVER"
    print(f"similar (exact numpy, dim {dim}, k=20, {queries} queries): p95 {p95[100_000]:.1f} ms at 100k, "
          f"{p95[1_000_000]:.1f} ms at 1M ({verdict} the {TARGET_MS:.0f} ms target); "
          f"{out[100_000][1]:.0f} bytes/image on disk (float16 + int64 id), "
          f"{out[100_000][2]:.0f} bytes/image in the app's cache (float32)")


if __name__ == "__main__":
    main()
