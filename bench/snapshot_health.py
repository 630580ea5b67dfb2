"""Freezing a snapshot of 100,000 labelled images, and rendering its health report page, through a live server.

Starts from `_server.build(100_000)` (half the images labelled) and works on a
copy of its database: the copy gets every other image labelled by SQL, with
varied confidence, difficulty tags and time, and a second source, so that
every chart of the report has something to draw.

Run: .venv/bin/python bench/snapshot_health.py
"""

from __future__ import annotations

import shutil
import time

import httpx
from sqlalchemy import text

from _server import OUT, build, serve
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


def main() -> None:
    settings = prepare()
    with serve(settings.data_dir) as (base, _pid), httpx.Client(base_url=base, timeout=120) as client:
        client.get("/snapshots")  # warm up imports and templates
        r, create_wall, create_server = _timed(client, "POST", "/api/snapshots", json={
            "name": "bench", "split": {"val": 0.2, "test": 0.1, "seed": 0, "folds": 5}})
        snapshot = r.json()
        assert snapshot["count"] == N_IMAGES, snapshot
        page, page_wall, page_server = _timed(client, "GET", f"/snapshots/{snapshot['id']}",
                                              headers={"Accept": "text/html"})
        assert "Class balance" in page.text
        _, live_wall, _ = _timed(client, "GET", "/snapshots/live", headers={"Accept": "text/html"})
    print(
        f"snapshot_health: {N_IMAGES} images: create snapshot {create_wall:.2f} s (server {create_server:.2f} s), "
        f"health page {page_wall:.2f} s (server {page_server:.2f} s, {len(page.content) // 1024} KiB), "
        f"live health page {live_wall:.2f} s"
    )


if __name__ == "__main__":
    main()
