"""Freezing a snapshot of 100,000 labelled images, and rendering its health report page, through a live server.

Starts from `_server.build(100_000)` (half the images labelled) and works on a
copy of its database: the copy gets every other image labelled by SQL, with
varied confidence, difficulty tags and time, and a second source, so that
every chart of the report has something to draw.

Then freezes a second snapshot after relabelling 1 % (another seed: about a
third of the images move between splits), runs the report jobs the freezes
queued (their health and diff, issue 16) with `loupe worker --once`, and
prints p50/p95 server time of the snapshot page, its health and diff (JSON and
page) and the snapshot lists.

Run: nice -n 10 .venv/bin/python bench/snapshot_health.py [--requests 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

import httpx
from _server import OUT, ROOT, build, serve
from sqlalchemy import text

from app.config import Settings
from app.db.engine import Database
from app.db.migrate import upgrade_head

N_IMAGES = 100_000


def prepare() -> Settings:
    """A copy of the 100k data dir's database, with every image labelled."""
    source = build(N_IMAGES)
    settings = Settings(data=OUT / f"data-{N_IMAGES}-snapshots")
    shutil.rmtree(settings.data_dir, ignore_errors=True)
    settings.ensure_dirs()
    shutil.copy(source / "loupe.db", settings.database_path)
    upgrade_head(settings.database_url)
    db = Database(settings.database_url)
    with db.writing() as s:
        s.execute(text("INSERT INTO sources (name, description, created_at) VALUES ('web', '', CURRENT_TIMESTAMP)"))
        s.execute(text("UPDATE images SET source_id = (SELECT id FROM sources WHERE name = 'web') WHERE id % 4 = 0"))
        version = s.execute(text("SELECT max(id) FROM taxonomy_versions")).scalar()
        first = s.execute(text("SELECT coalesce(max(id), 0) FROM label_events")).scalar()
        s.execute(text(f"""
            INSERT INTO label_events (image_id, class_id, confidence, tags, note, annotator, taxonomy_version_id,
                                      kind, ms, created_at)
            SELECT images.id, 1 + images.id % 10,
                   CASE images.id % 5 WHEN 0 THEN 0.6 WHEN 1 THEN 0.3 ELSE 1.0 END,
                   CASE WHEN images.id % 9 = 0 THEN '["dark"]' WHEN images.id % 13 = 0 THEN '["blurred", "occluded"]'
                        ELSE '[]' END,
                   '', 'bench', {version}, 'manual', 300 + (images.id * 7919) % 20000, images.imported_at
            FROM images LEFT JOIN current_labels ON current_labels.image_id = images.id
            WHERE current_labels.class_id IS NULL
        """))
        s.execute(text(f"""
            INSERT OR REPLACE INTO current_labels (image_id, event_id, class_id)
            SELECT image_id, id, class_id FROM label_events WHERE id > {first}
        """))
        s.commit()
        labelled = s.execute(text("SELECT count(*) FROM current_labels WHERE class_id IS NOT NULL")).scalar()
    db.dispose()
    assert labelled == N_IMAGES, labelled
    return settings


def _timed(client: httpx.Client, method: str, url: str, **kw) -> tuple[httpx.Response, float, float]:
    t0 = time.perf_counter()
    r = client.request(method, url, **kw)
    wall = time.perf_counter() - t0
    r.raise_for_status()
    return r, wall, float(r.headers["server-timing"].split("dur=")[1]) / 1000


def _p95(client: httpx.Client, url: str, requests: int) -> tuple[float, float, int, int]:
    """(p50, p95) server ms of `requests` GETs after 2 warm-ups, the last status and body size."""
    times = []
    for i in range(2 + requests):
        r = client.get(url, headers={"Accept": "text/html" if not url.startswith("/api/") else "*/*"})
        if i >= 2:
            times.append(float(r.headers["server-timing"].split("dur=")[1]))
    times.sort()
    return times[len(times) // 2], times[min(len(times) - 1, round(0.95 * (len(times) - 1)))], r.status_code, len(r.content)


def _relabel(settings: Settings, every: int) -> None:
    """A new label on every `every`-th image (another class), as a person relabelling would leave it."""
    db = Database(settings.database_url)
    with db.writing() as s:
        first = s.execute(text("SELECT max(id) FROM label_events")).scalar()
        s.execute(text(f"""
            INSERT INTO label_events (image_id, class_id, confidence, tags, note, annotator, taxonomy_version_id,
                                      kind, ms, created_at)
            SELECT e.image_id, 1 + (e.class_id % 10), e.confidence, e.tags, '', 'bench', e.taxonomy_version_id,
                   'manual', 900, CURRENT_TIMESTAMP
            FROM current_labels c JOIN label_events e ON e.id = c.event_id WHERE c.image_id % {every} = 0
        """))
        s.execute(text(f"INSERT OR REPLACE INTO current_labels (image_id, event_id, class_id) "
                       f"SELECT image_id, id, class_id FROM label_events WHERE id > {first}"))
        s.commit()
    db.dispose()


def _work(data) -> tuple[float, float]:
    """Run the queued jobs with `loupe worker --once`: its wall seconds and peak RSS in MiB (wait4)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "worker", "--once", "--data", str(data)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "LOUPE_TOKEN": ""})
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, status
    return time.perf_counter() - t0, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=20, help="measured GETs per page")
    args = ap.parse_args()
    settings = prepare()
    with serve(settings.data_dir) as (base, _pid), httpx.Client(base_url=base, timeout=120) as client:
        client.get("/snapshots")  # warm up imports and templates
        r, create_wall, create_server = _timed(client, "POST", "/api/snapshots", json={
            "name": "bench", "split": {"val": 0.2, "test": 0.1, "seed": 0, "folds": 5}})
        first = r.json()
        assert first["count"] == N_IMAGES, first
        _relabel(settings, 100)
        second = client.post("/api/snapshots", json={"name": "bench-b", "split": {
            "val": 0.2, "test": 0.1, "seed": 1, "folds": 5}}, timeout=600).raise_for_status().json()
        queued = first.get("queued", []) + second.get("queued", [])
        worked, rss = _work(settings.data_dir) if queued else (0.0, 0.0)
        jobs = [client.get(f"/api/jobs/{j}").json() for j in queued]
        for job in jobs:
            assert job["status"] == "succeeded", job
            print(f"snapshot_health: job #{job['id']} {job['message']}")
        a, b = first["id"], second["id"]
        urls = [f"/snapshots/{b}", f"/api/snapshots/{b}/health", f"/api/snapshots/{a}/diff/{b}",
                f"/snapshots/{b}?diff_with={a}", f"/api/snapshots/{b}", "/api/snapshots", "/snapshots"]
        got = {url: _p95(client, url, args.requests) for url in urls}
        _, live_wall, _ = _timed(client, "GET", "/snapshots/live", headers={"Accept": "text/html"})
    print(f"snapshot_health: {N_IMAGES} images: create snapshot {create_wall:.2f} s (server {create_server:.2f} s); "
          f"report jobs {worked:.1f} s (worker process, {len(queued)} jobs, peak RSS {rss:.0f} MiB); live health page {live_wall:.2f} s")
    for url, (p50, p95, code, size) in got.items():
        print(f"snapshot_health: {N_IMAGES} images: GET {url} p50 {p50:.1f} ms p95 {p95:.1f} ms "
              f"(HTTP {code}, {size / 1024:.1f} KiB)")


if __name__ == "__main__":
    main()
