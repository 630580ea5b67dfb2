"""Server time (p50/p95 of Server-Timing) of the labelling page in each queue order, at N images (SQLite).

    .venv/bin/python bench/orders.py [--images 100000] [--requests 100]

Builds on bench/scale.py's rows (four sources, the first quarter and 5 % more
labelled), in its own data dir under bench/out, then adds what the orders read:
a succeeded train job (a snapshot row, per-source out-of-sample accuracy, and
"suggestion" predictions with their margins for max_suggestions = 20,000
unlabelled images) and a succeeded analysis whose `diverse` array holds every
unlabelled image (a shuffled 20,000 first, the rest in import order, as
app.embeddings.diversity ranks them), of which the first LABELLED_AHEAD are
labelled since (labels made after the analysis). For each order: the page
(`/label?order=`), a skip (`/label/stage?after=`) and save-and-next
(`POST /label/{id}`); for "diverse" also the first request of a fresh server,
which walks the stretch labelled since the analysis once. One line per order.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time

import httpx
import numpy as np
from _server import OUT, serve  # also puts the repo on sys.path
from scale import cpu_ms, pct, seed, server_ms
from sqlalchemy import text

from app.artifacts import job_dir
from app.config import Settings
from app.db.engine import Database
from app.db.models import Job
from app.embeddings import analyses

SUGGESTIONS = 20_000
RANKED = 20_000
LABELLED_AHEAD = 10_000
ORDERS = ("import", "uncertain", "diverse", "weakest-source")
PER_SOURCE = {"camera": 0.91, "stock": 0.94, "web": 0.61, "phone": 0.78}


def prepare(settings: Settings) -> None:
    """The train job, its suggestions and the analysis (once per data dir)."""
    db = Database(settings.database_url)
    try:
        with db.reading() as s:
            if s.execute(text("SELECT count(*) FROM jobs WHERE kind = 'analyse'")).scalar():
                return
        t0 = time.perf_counter()
        with db.writing() as s:
            classes = [{"id": i, "name": n} for i, n in s.execute(text("SELECT id, name FROM classes ORDER BY id"))]
            version = s.execute(text("SELECT max(id) FROM taxonomy_versions")).scalar()
            s.execute(text("INSERT INTO snapshots (name, taxonomy_version_id, filter, split, seed, classes, hash, "
                           "count, created_at) VALUES ('bench', :v, '{}', '{}', 0, :c, 'x', 0, CURRENT_TIMESTAMP)"),
                      {"v": version, "c": json.dumps(classes)})
            snapshot = s.execute(text("SELECT max(id) FROM snapshots")).scalar()
            job = Job(kind="train", snapshot_id=snapshot, config={}, status="succeeded", notes=[], artifacts={},
                      metrics={"accuracy": 0.85, "per_source": PER_SOURCE})
            s.add(job)
            s.flush()
            probs = "[" + ", ".join(["0.1"] * len(classes)) + "]"
            s.execute(text(f"""
                INSERT INTO predictions (job_id, image_id, role, out_of_sample, probs, margin)
                SELECT {job.id}, id, 'suggestion', 0, '{probs}', ((id * 7919) % 1000) / 1000.0
                FROM images WHERE labelled = 0 AND excluded = 0 ORDER BY id LIMIT {SUGGESTIONS}
            """))
            waiting = np.array(s.scalars(text("SELECT id FROM images WHERE labelled = 0 AND excluded = 0 "
                                              "ORDER BY id")).all(), dtype=np.int64)
            every = np.array(s.scalars(text("SELECT id FROM images ORDER BY id")).all(), dtype=np.int64)
            rng = np.random.default_rng(0)
            ranked = rng.choice(len(waiting), size=min(RANKED, len(waiting)), replace=False)
            rest = np.setdiff1d(np.arange(len(waiting)), ranked)
            order = waiting[np.concatenate([ranked, rest])]
            analysis = Job(kind="analyse", snapshot_id=None, config={"space": job.id}, status="succeeded", notes=[],
                           artifacts={})
            s.add(analysis)
            s.flush()
            folder = job_dir(settings, analysis.id)
            analysis.artifacts = {"space": job.id, "files": {"ids": analyses.save(folder, "ids", every),
                                                              "diverse": analyses.save(folder, "diverse", order)}}
            # Labels made since the analysis: the first stretch of its order (bulk-inserted like scale.py's).
            ahead = ",".join(str(int(i)) for i in order[:LABELLED_AHEAD])
            s.execute(text(f"""
                INSERT INTO label_events (image_id, class_id, confidence, tags, note, annotator, taxonomy_version_id,
                                          kind, ms, created_at)
                SELECT id, 1 + id % 10, 1.0, '[]', '', 'bench', {version}, 'manual', 500, CURRENT_TIMESTAMP
                FROM images WHERE id IN ({ahead})
            """))
            s.execute(text(f"""
                INSERT INTO current_labels (image_id, event_id, class_id)
                SELECT image_id, max(id), 1 + image_id % 10 FROM label_events WHERE image_id IN ({ahead})
                GROUP BY image_id
            """))
            s.commit()
        print(f"prepared the orders' job and analysis in {time.perf_counter() - t0:.0f} s")
    finally:
        db.dispose()


def image_id(html: str) -> str:
    return re.search(r'data-image-id="(\d+)"', html).group(1)


def measure(base: str, pid: int, order: str, requests: int) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Server times per request kind, and the server process's CPU ms per request (less inflated by a busy
    machine than wall time)."""
    out: dict[str, list[float]] = {"page": [], "skip": [], "save": []}
    cpu: dict[str, float] = {}
    with httpx.Client(base_url=base, timeout=60) as c:
        classes = re.findall(r'data-class="(\d+)"', c.get("/label").text)
        cpu0 = cpu_ms(pid)
        for _ in range(requests):
            out["page"].append(server_ms(c.get("/label", params={"order": order})))
        cpu["page"], cpu0 = (cpu_ms(pid) - cpu0) / requests, cpu_ms(pid)
        shown = image_id(c.get("/label", params={"order": order}).text)
        cpu0 = cpu_ms(pid)
        for _ in range(requests):
            r = c.get("/label/stage", params={"after": shown, "order": order})
            shown = image_id(r.text)
            out["skip"].append(server_ms(r))
        cpu["skip"], cpu0 = (cpu_ms(pid) - cpu0) / requests, cpu_ms(pid)
        for i in range(requests):
            r = c.post(f"/label/{shown}", data={"class": classes[i % len(classes)], "annotator": "bench",
                                                "ms": "900", "order": order})
            shown = image_id(r.text)
            out["save"].append(server_ms(r))
        cpu["save"] = (cpu_ms(pid) - cpu0) / requests
    return out, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=100, help="measured requests per kind and order")
    args = ap.parse_args()
    data = OUT / f"orders-{args.images}" / "sqlite"
    settings = Settings(data=data, database_url="")
    seed(settings, args.images)
    prepare(settings)
    for order in ORDERS:
        with serve(data) as (base, pid):
            cold = server_ms(httpx.get(f"{base}/label", params={"order": order}, timeout=60))
            for _ in range(5):  # warm-up
                httpx.get(f"{base}/label", params={"order": order}, timeout=60)
            got, cpu = measure(base, pid, order, args.requests)
        parts = ", ".join(f"{k} {pct(v, 50):.1f}/{pct(v, 95):.1f} (cpu {cpu[k]:.1f})" for k, v in got.items())
        worst = max(pct(v, 95) for v in got.values())
        print(f"orders {order}: {args.images} images, {args.requests} requests each, server p50/p95 ms "
              f"(server CPU ms per request): {parts}; "
              f"first request of a fresh server {cold:.1f} ms; worst p95 {worst:.1f} "
              f"({'under' if worst < 30 else 'OVER'} 30); load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
