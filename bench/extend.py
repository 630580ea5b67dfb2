"""Placing images embedded since into an analysis (app.embeddings.extend) at 1,000,000 rows, and its outlier flags.

Database: bench/out/map-N (bench/_map_data.py: N images, every other one labelled with one of 10 classes, one in
200 excluded). Space: a train job whose embeddings are bench/similar.py's clustered synthetic rows (N x --dim,
float16 on disk, as a real job writes them). Base analysis: the first N - m images, written as an analyse job
writes its files; its numbers are well-formed stand-ins (its map the PCA of the rows, its outlier statistics one
median and scale for every class), since what is timed is the extension, not the base. One line per run: the
space's load (files -> unit float32 rows, as every analysis starts), the extension (m new rows: their K nearest
among all N rows and among the labelled ones, exactly; their points, scores; every file rewritten), the outlier
flags that follow it (after_analysis), the job's peak RSS. Run one m per process (peak RSS is the process').

Measured (two cores shared with other work, load 5-6; CPU seconds in brackets):
  extend n=100,000 new=1,000 load_s=1.6 extend_s=9.6 (cpu 5.4) flags_s=0.2 peak_mb=717
  extend n=100,000 new=9,000 load_s=0.9 extend_s=31.7 (cpu 20.1) flags_s=0.2 (446 created) peak_mb=727
  extend n=1,000,000 new=1,000 load_s=21.8 (cpu 10.5) extend_s=29.7 (cpu 22.9) flags_s=0.2 peak_mb=2143
  (the first run at 1,000,000, flags raised from scratch: flags_s=1.9, 275 created)

Run: .venv/bin/python bench/extend.py [--n 1000000] [--new 1000] [--dim 256]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _map_data import build  # noqa: E402
from similar import clustered  # noqa: E402

from app.artifacts import job_dir  # noqa: E402
from app.config import Settings  # noqa: E402
from app.db import asof  # noqa: E402
from app.db.engine import Database  # noqa: E402
from app.db.models import Job  # noqa: E402
from app.embeddings import analyses, extend, files, knn, maps  # noqa: E402
from app.embeddings import similar as similar_mod  # noqa: E402
from app.embeddings.analyse import after_analysis  # noqa: E402
from app.embeddings.projection import pca  # noqa: E402


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def space_job(db, settings, n: int, dim: int) -> int:
    """A succeeded train job whose embeddings are n clustered rows (ids 1..n); made once per data dir."""
    with db.reading() as s:
        for job in s.query(Job).filter(Job.kind == "train", Job.status == "succeeded"):
            if (job.artifacts or {}).get("embedded") == n and (job.artifacts or {}).get("embedding_dim") == dim:
                return job.id
    with db.writing() as s:
        job = Job(kind="train", snapshot_id=None, config={}, status="succeeded", artifacts={}, notes=[])
        s.add(job)
        s.commit()
        job_id = job.id
    writer = files.Writer(job_dir(settings, job_id), np.arange(1, n + 1), dim)
    step = 200_000
    for start in range(0, n, step):
        stop = min(n, start + step)
        writer.write(np.arange(start + 1, stop + 1), clustered(stop - start, dim, seed=start))
    artifacts = writer.finish()
    with db.writing() as s:
        job = s.get(Job, job_id)
        job.artifacts = {**artifacts, "embedded": n}
        s.commit()
    return job_id


def base_analysis(db, settings, space: int, unit: np.ndarray, ids: np.ndarray, mapped: analyses.Analysis) -> int:
    """An analysis of the rows `ids` (a prefix of the space) with well-formed stand-in numbers."""
    n = len(ids)
    rng = np.random.default_rng(0)
    with db.reading() as s:
        seen = asof.stamp(s)
    marks = np.asarray(mapped.array("map_marks"))[:n]
    cls = np.asarray(mapped.array("map_class"))[:n].astype(np.int64)
    reference = (marks & maps.MARK_LABELLED > 0) & (marks & maps.MARK_EXCLUDED == 0)
    with db.writing() as s:
        job = Job(kind=analyses.KIND, config={"space": space}, status="succeeded", artifacts={}, notes=[])
        s.add(job)
        s.commit()
        job_id = job.id
    folder = job_dir(settings, job_id)
    k = knn.K
    arrays = {"ids": ids, "xy": np.clip(pca(unit[:n]) / 3, -1, 1).astype(np.float32),
              "knn": rng.integers(0, n, (n, k), dtype=np.int32), "knn_distance": np.full((n, k), 0.1, np.float16),
              "outlier": rng.normal(0, 1, n).astype(np.float32),
              "outlier_knn": rng.integers(0, n, (n, k), dtype=np.int32),
              "outlier_knn_distance": np.full((n, k), 0.1, np.float16), "outlier_class": cls,
              "outlier_usual": np.full(n, 0.1, np.float32), "outlier_scale": np.full(n, 0.02, np.float32),
              "outlier_reference": reference, "neighbour_share": np.full(n, np.nan, np.float32),
              "share_neighbours": np.full((n, k), -1, np.int64), "diverse": ids[~reference][:20_000],
              "map_class": cls.astype(np.int32), "map_source": np.asarray(mapped.array("map_source"))[:n],
              "map_marks": marks, "map_split": np.full(n, -1, np.int8)}
    saved = {name: analyses.save(folder, name, array) for name, array in arrays.items()}
    with db.writing() as s:
        job = s.get(Job, job_id)
        job.artifacts = {"space": space, "files": saved, "snapshot": None}
        job.metrics = {"stamp": {**seen, "image": int(ids[-1])}, "outlier_overall": [0.1, 0.02]}
        s.commit()
    return job_id


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--new", type=int, default=1_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--profile", action="store_true", help="print where the extension's time goes")
    args = parser.parse_args()
    data = build(args.n)
    settings = Settings(data=data)
    db = Database(settings.database_url)
    space = space_job(db, settings, args.n, args.dim)
    before = peak_mb()
    t, c = time.perf_counter(), cpu_s()
    with db.reading() as s:
        index = similar_mod.load_index(s, settings, space)
        mapped = analyses.latest(s, settings, space=0)  # bench/_map_data's analysis: the stored state
    load_s, load_cpu = time.perf_counter() - t, cpu_s() - c
    base = base_analysis(db, settings, space, index.vectors, index.ids[:args.n - args.new], mapped)
    with db.writing() as s:
        job = Job(kind=analyses.KIND, config={"space": space, "extend": True}, status="running", artifacts={},
                  notes=[])
        s.add(job)
        s.commit()
        job_id = job.id
    hooks = SimpleNamespace(progress=lambda *a: None, log=lambda *a: None, cancelled=lambda: False)
    with db.reading() as s:
        found = extend.base_for(s, settings, s.get(Job, job_id), index)
        seen = asof.stamp(s)
        space_row = s.get(Job, space)
    assert found is not None and found.job == base, "the base analysis cannot be extended"
    t, c = time.perf_counter(), cpu_s()
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        outcome = profiler.runcall(extend.run, db, settings, job_id, space_row, index, found, seen, hooks)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(12)
    else:
        outcome = extend.run(db, settings, job_id, space_row, index, found, seen, hooks)
    ext_s, ext_cpu = time.perf_counter() - t, cpu_s() - c
    with db.writing() as s:
        job = s.get(Job, job_id)
        job.status, job.artifacts, job.metrics = "succeeded", outcome["artifacts"], outcome["metrics"]
        s.commit()
    t = time.perf_counter()
    flags = after_analysis(db, job_id)
    flag_s = time.perf_counter() - t
    print(f"extend n={args.n:,} new={args.new:,} dim={args.dim} load_s={load_s:.1f} (cpu {load_cpu:.1f}) "
          f"extend_s={ext_s:.1f} (cpu {ext_cpu:.1f}) flags_s={flag_s:.1f} ({flags.get('created')} created) "
          f"peak_mb={peak_mb():.0f} (before load {before:.0f}) load={os.getloadavg()[0]:.1f}")
    db.dispose()


if __name__ == "__main__":
    main()
