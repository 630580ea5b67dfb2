"""Shared by the server benchmarks: a data dir with N images (half labelled), and a live server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import text  # noqa: E402

from app.config import Settings  # noqa: E402
from app.db.engine import Database  # noqa: E402
from app.db.migrate import upgrade_head  # noqa: E402
from app.images.ingest import import_paths  # noqa: E402
from app.taxonomy.service import apply_change  # noqa: E402
from tests import fmnist  # noqa: E402

OUT = ROOT / "bench" / "out"
REAL_IMAGES = 2_000


def build(n_images: int) -> Path:
    """A data dir with `n_images` images, the first half labelled; cached between runs.

    2,000 are real Fashion-MNIST imports (files, thumbnails, previews); the rest
    are copies of their rows with new hashes, which is all the server reads when
    it saves a label and renders the next image.
    """
    data = OUT / f"data-{n_images}"
    if (data / "ready").exists():
        return data
    import shutil

    shutil.rmtree(data, ignore_errors=True)
    settings = Settings(data=data)
    settings.ensure_dirs()
    upgrade_head(settings.database_url)
    db = Database(settings.database_url)
    pngs = OUT / "fmnist-png"
    if not pngs.exists():
        fmnist.write_pngs(pngs, REAL_IMAGES)
    import_paths(db, settings, [pngs], source="fmnist")
    with db.writing() as s:
        for name in fmnist.CLASSES:
            apply_change(s, change={"op": "add", "name": name})
    with db.writing() as s:
        s.execute(text(f"""
            WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < {n_images // REAL_IMAGES})
            INSERT INTO images (sha256, stored_path, original_filename, source_id, batch_id, width, height,
                                format, mode, byte_size, phash, imported_at, excluded)
            SELECT printf('%064x', i * 1000000 + images.id), stored_path, original_filename, source_id, batch_id,
                   width, height, format, mode, byte_size, phash, imported_at, 0
            FROM images, k WHERE images.id <= {REAL_IMAGES} AND i * {REAL_IMAGES} + images.id <= {n_images}
        """))
        version = s.execute(text("SELECT max(id) FROM taxonomy_versions")).scalar()
        s.execute(text(f"""
            INSERT INTO label_events (image_id, class_id, confidence, tags, note, annotator, taxonomy_version_id,
                                      kind, ms, created_at)
            SELECT id, 1 + id % 10, 1.0, '[]', '', 'bench', {version}, 'import', NULL, imported_at
            FROM images WHERE id <= {n_images // 2}
        """))
        s.execute(text("""
            INSERT INTO current_labels (image_id, event_id, class_id)
            SELECT image_id, id, class_id FROM label_events
        """))
        s.commit()
    db.dispose()
    (data / "ready").touch()
    return data


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(data: Path):
    """`loupe serve` on a free port; yields (base_url, pid)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--no-worker", "--port", str(port), "--data", str(data)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env={**os.environ, "LOUPE_TOKEN": ""},
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            httpx.get(f"{base}/healthz", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    try:
        yield base, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process in MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
