"""Import 5,000 Fashion-MNIST PNGs (28x28) into a fresh data dir; prints images/s.

Run: .venv/bin/python bench/import_small.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.config import Settings  # noqa: E402
from app.db.engine import Database  # noqa: E402
from app.db.migrate import upgrade_head  # noqa: E402
from app.images.ingest import import_paths  # noqa: E402
from tests import fmnist  # noqa: E402

N = 5000


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="loupe-bench-") as tmp:
        folder = Path(tmp, "pngs")
        fmnist.write_pngs(folder, N, folders=True)
        settings = Settings(data=Path(tmp, "data"))
        settings.ensure_dirs()
        upgrade_head(settings.database_url)
        db = Database(settings.database_url)
        start = time.perf_counter()
        report = import_paths(db, settings, [folder], source="fashion-mnist")
        elapsed = time.perf_counter() - start
        db.dispose()
        assert len(report.imported) + len(report.duplicates) == N and not report.rejected, report.rejected[:3]
        print(f"import_small: {N} images in {elapsed:.1f} s = {N / elapsed:.0f} images/s")


if __name__ == "__main__":
    main()
