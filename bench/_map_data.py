"""Shared by bench/map_paint.py and bench/map_api.py: a data dir with N images and a stored analysis with a map.

20 real Fashion-MNIST imports (files and thumbnails, for hover) and copies of
their rows up to N, spread over three sources; every other image labelled
with one of 10 classes, one in 100 flagged, one in 200 excluded. The analysis' `xy` is synthetic: one Gaussian blob per
class (the unlabelled images' blobs by their hidden class), plus 2 % scattered
points, which is what a projection of a good model's embeddings looks like.
The analysis stores its stamp and the map's colours and marks as the analyse job does (app.embeddings.maps), so
the map is read the way a real analysis' is: the stored state plus the changes since.
Cached under bench/out/map-N (a few seconds to build at 100,000, about 2 minutes at 1,000,000).
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from app.config import Settings  # noqa: E402
from app.db.engine import Database  # noqa: E402
from app.db.migrate import upgrade_head  # noqa: E402
from app.images.ingest import import_paths  # noqa: E402
from app.taxonomy.service import apply_change  # noqa: E402
from tests import fmnist  # noqa: E402
from tests.embeddings.maps_data import stored_analysis  # noqa: E402

OUT = ROOT / "bench" / "out"
REAL = 20


def build(n: int) -> Path:
    data = OUT / f"map-{n}"
    if (data / "ready-state").exists():
        return data
    shutil.rmtree(data, ignore_errors=True)
    t0 = time.perf_counter()
    settings = Settings(data=data)
    settings.ensure_dirs()
    upgrade_head(settings.database_url)
    db = Database(settings.database_url)
    pngs = OUT / "fmnist-png"
    if not pngs.exists():
        fmnist.write_pngs(pngs, 2_000)
    import_paths(db, settings, sorted(pngs.glob("*.png"))[:REAL], source="camera")
    with db.writing() as s:
        for name in fmnist.CLASSES:
            apply_change(s, change={"op": "add", "name": name})
    with db.writing() as s:
        for name in ("web", "stock"):
            s.execute(text("INSERT INTO sources (name, description, created_at) VALUES (:n, '', CURRENT_TIMESTAMP)"),
                      {"n": name})
        s.execute(text(f"""
            WITH RECURSIVE k(i) AS (SELECT {REAL + 1} UNION ALL SELECT i + 1 FROM k WHERE i < {n})
            INSERT INTO images (id, sha256, stored_path, original_filename, source_id, batch_id, width, height,
                                format, mode, byte_size, phash, imported_at, excluded, labelled)
            SELECT i, printf('%064x', i), r.stored_path, r.original_filename, 1 + i % 3, r.batch_id, r.width,
                   r.height, r.format, r.mode, r.byte_size, r.phash, r.imported_at,
                   CASE WHEN i % 200 = 0 THEN 1 ELSE 0 END, CASE WHEN i % 2 = 0 THEN 1 ELSE 0 END
            FROM k JOIN images r ON r.id = 1 + i % {REAL}
        """))
        s.execute(text("UPDATE images SET labelled = CASE WHEN id % 2 = 0 THEN 1 ELSE 0 END"))
        version = s.execute(text("SELECT max(id) FROM taxonomy_versions")).scalar()
        s.execute(text(f"""
            INSERT INTO label_events (image_id, class_id, confidence, tags, note, annotator, taxonomy_version_id,
                                      kind, ms, created_at)
            SELECT id, 1 + (id / 2) % 10, 1.0, '[]', '', 'bench', {version}, 'import', NULL, imported_at
            FROM images WHERE id % 2 = 0
        """))
        s.execute(text("INSERT INTO current_labels (image_id, event_id, class_id) "
                       "SELECT image_id, id, class_id FROM label_events"))
        s.execute(text("""
            INSERT INTO flags (image_id, kind, score, status, details, created_at)
            SELECT id, 'outlier', 5.0, 'open', '{}', CURRENT_TIMESTAMP FROM images WHERE id % 100 = 3
        """))
        s.commit()
    rng = np.random.default_rng(0)
    ids = np.arange(1, n + 1)
    hidden = (ids // 2) % 10
    centres = rng.uniform(-0.75, 0.75, (10, 2))
    xy = centres[hidden] + rng.normal(0, 0.08, (n, 2))
    stray = rng.random(n) < 0.02
    xy[stray] = rng.uniform(-1, 1, (int(stray.sum()), 2))
    stored_analysis(db, settings, ids, xy.astype(np.float32), space=0, state=True)
    db.dispose()
    (data / "ready-state").touch()
    print(f"built {data} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return data
