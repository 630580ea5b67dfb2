"""Import 100 synthetic 12 MP JPEGs (4000x3000) into a fresh data dir; prints images/s.

The JPEGs are made before the timing (and cached in bench/out/large/): a grid
of upscaled Fashion-MNIST tiles, tinted by colour gradients, plus noise, so
they compress like photos (a few MB each) rather than to nothing.

Run: .venv/bin/python bench/import_large.py
"""

from __future__ import annotations

import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.config import Settings  # noqa: E402
from app.db.engine import Database  # noqa: E402
from app.db.migrate import upgrade_head  # noqa: E402
from app.images.ingest import import_paths  # noqa: E402
from tests import fmnist  # noqa: E402

N = 100
WIDTH, HEIGHT, TILE = 4000, 3000, 250
CACHE = ROOT / "bench" / "out" / "large"


def make_jpeg(i: int) -> Path:
    path = CACHE / f"large-{i:03d}.jpg"
    if path.exists():
        return path
    rng = np.random.default_rng(i)
    images, _ = fmnist.load("train", 2000)
    rows, cols = HEIGHT // TILE, WIDTH // TILE
    picks = images[rng.integers(0, len(images), rows * cols)]
    grid = picks.reshape(rows, cols, 28, 28).transpose(0, 2, 1, 3).reshape(rows * 28, cols * 28)
    gray = np.asarray(Image.fromarray(grid).resize((WIDTH, HEIGHT), Image.Resampling.BICUBIC), dtype=np.float32)
    y = np.linspace(0, 1, HEIGHT, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, WIDTH, dtype=np.float32)[None, :]
    tint = np.stack(np.broadcast_arrays(0.6 + 0.4 * x, 0.5 + 0.5 * y, 1.0 - 0.5 * x * y), axis=-1)
    rgb = gray[..., None] * tint + 60 * (1 - tint)
    rgb += rng.normal(0, 6, (HEIGHT, WIDTH, 1)).astype(np.float32)
    pixels = np.clip(rgb, 0, 255).astype(np.uint8)
    tmp = path.with_suffix(".part")
    Image.fromarray(pixels).save(tmp, "JPEG", quality=90)
    tmp.replace(path)
    return path


def main() -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    with multiprocessing.Pool() as pool:
        paths = pool.map(make_jpeg, range(N))
    megabytes = sum(p.stat().st_size for p in paths) / 1e6
    with tempfile.TemporaryDirectory(prefix="loupe-bench-") as tmp:
        settings = Settings(data=Path(tmp, "data"))
        settings.ensure_dirs()
        upgrade_head(settings.database_url)
        db = Database(settings.database_url)
        start = time.perf_counter()
        report = import_paths(db, settings, [CACHE], source="synthetic-12mp")
        elapsed = time.perf_counter() - start
        db.dispose()
        assert len(report.imported) == N and not report.rejected, report.rejected[:3]
        print(
            f"import_large: {N} images (4000x3000 JPEG, {megabytes / N:.1f} MB each) in {elapsed:.1f} s"
            f" = {N / elapsed:.1f} images/s"
        )


if __name__ == "__main__":
    main()
