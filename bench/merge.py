"""Merge two classes holding 50,000 labels each, at 100,000 images: the time apply_change takes."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from app.config import Settings  # noqa: E402
from app.db.engine import Database  # noqa: E402
from app.db.migrate import upgrade_head  # noqa: E402
from app.taxonomy.service import apply_change  # noqa: E402

N = 100_000


def build(data: Path) -> Database:
    """Image rows (no files: a merge never reads them) and one manual label each, half per class."""
    shutil.rmtree(data, ignore_errors=True)
    settings = Settings(data=data)
    settings.ensure_dirs()
    upgrade_head(settings.database_url)
    db = Database(settings.database_url)
    for name in ("sneaker", "trainer"):
        with db.writing() as s:
            apply_change(s, change={"op": "add", "name": name})
    with db.writing() as s:
        s.execute(text("INSERT INTO sources (name, description, created_at) VALUES ('bench', '', datetime('now'))"))
        s.execute(text("INSERT INTO import_batches (source_id, origin, created_at) VALUES (1, 'cli', datetime('now'))"))
        s.execute(text(f"""
            WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < {N})
            INSERT INTO images (sha256, stored_path, original_filename, source_id, batch_id, width, height, format,
                                mode, byte_size, phash, imported_at, excluded)
            SELECT printf('%064x', i), 'x', 'img' || i || '.png', 1, 1, 28, 28, 'PNG', 'L', 500, i,
                   datetime('now'), 0 FROM k"""))
        s.execute(text("""
            INSERT INTO label_events (image_id, class_id, confidence, tags, note, annotator, taxonomy_version_id,
                                      kind, ms, created_at)
            SELECT id, 1 + id % 2, 0.6, '["dark"]', '', 'bench', 2, 'manual', 1200, datetime('now') FROM images"""))
        s.execute(text("INSERT INTO current_labels (image_id, event_id, class_id) "
                       "SELECT image_id, id, class_id FROM label_events"))
        s.commit()
    return db


def main() -> None:
    db = build(ROOT / "bench" / "out" / "merge")
    with db.writing() as s:
        start = time.perf_counter()
        result = apply_change(s, change={"op": "merge", "classes": ["sneaker", "trainer"], "into": "shoe"})
        elapsed = time.perf_counter() - start
    counts = {c["name"]: c["count"] for c in result["classes"]}
    assert counts == {"shoe": N}, counts
    print(f"merge: 2 classes x {N // 2} labels into a new class at {N} images in {elapsed:.2f} s")
    db.dispose()


if __name__ == "__main__":
    main()
