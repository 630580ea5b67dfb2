"""The stored report's refresh (duplicates + live health, a "report" job's work) on real images: cold, again, after an import.

    nice -n 10 .venv/bin/python bench/report_refresh.py [--images 20000] [--added 200]

Imports --images real Fashion-MNIST images (files and thumbnails; their
look-alike pHashes make thousands of candidate pairs) into a data dir under
bench/out (kept and reused), labels half of them, then computes the report in a
fresh process each time, so nothing is cached in memory:
  cold   no compared pairs kept (the cache file removed);
  again  nothing changed since;
  added  after importing --added more images (new ones each run).
Prints one line per run: seconds, peak RSS, pairs kept, and the duplicate groups found
(the same answer cold and warm is the point).
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import time

from _server import OUT, ROOT  # also puts the repo on sys.path
from sqlalchemy import text

from app.config import Settings
from app.db.engine import Database
from app.db.migrate import upgrade_head
from app.images.ingest import import_paths
from app.labelling.events import LabelInput, append_label_events
from app.snapshots import pairs
from app.taxonomy.service import apply_change
from tests import fmnist


def prepare(n: int) -> Settings:
    settings = Settings(data=OUT / f"report-{n}")
    if (settings.data_dir / "ready").exists():
        return settings
    settings.ensure_dirs()
    upgrade_head(settings.database_url)
    db = Database(settings.database_url)
    pngs = OUT / f"fmnist-png-{n}"
    if not pngs.exists():
        fmnist.write_pngs(pngs, n)
    with db.reading() as s:
        imported = s.execute(text("SELECT count(*) FROM images")).scalar()
    if not imported:
        import_paths(db, settings, [pngs], source="fmnist")
    _, labels = fmnist.load("train", n)
    with db.writing() as s:
        have = set(s.execute(text("SELECT name FROM classes")).scalars())
        for name in fmnist.CLASSES:
            if name not in have:
                apply_change(s, change={"op": "add", "name": name})
    with db.writing() as s:
        rows = s.execute(text("SELECT id, original_filename FROM images ORDER BY id")).all()
        append_label_events(s, [(image_id, LabelInput(fmnist.CLASSES[labels[int(re.search(r"(\d+)\.png$", filename).group(1))]],
                                                      annotator="bench"))
                                for image_id, filename in rows[::2]])
        s.commit()
    (settings.data_dir / "ready").touch()
    return settings


def add(settings: Settings, n: int, count: int) -> None:
    """Import `count` Fashion-MNIST test images not imported before."""
    db = Database(settings.database_url)
    with db.reading() as s:
        have = s.execute(text("SELECT count(*) FROM images WHERE original_filename LIKE 'fmnist-test-%'")).scalar()
    out = OUT / f"report-{n}-added-{have}"
    images, _ = fmnist.load("test", have + count)
    out.mkdir(parents=True, exist_ok=True)
    from PIL import Image
    paths = []
    for i in range(have, have + count):
        p = out / f"fmnist-test-{i:05d}.png"
        Image.fromarray(images[i]).save(p)
        paths.append(p)
    import_paths(db, settings, paths, source="fmnist")


def measure(data: str) -> None:
    """One report computation in this process (called in a child)."""
    from app.quality import results
    from app.snapshots import looks

    settings = Settings(data=data)
    looks.register(settings)
    db = Database(settings.database_url)
    start = time.perf_counter()
    with db.reading() as s:
        report = results.compute(s)
    took = time.perf_counter() - start
    near = [r for r in report["duplicates"]["rows"] if r["kind"] == "near" and r["what"] == "any"]
    kept = len(pairs.Memory(settings.cache_dir / pairs.FILE))
    print(json.dumps({"s": round(took, 2), "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                      "kept": kept, "images": report["duplicates"]["images"],
                      "near_groups": near[0]["groups"] if near else 0,
                      "effective": report["health"]["effective"]["size"]}))


def run(settings: Settings) -> dict:
    out = subprocess.run([sys.executable, __file__, "--measure", str(settings.data_dir)], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20_000)
    ap.add_argument("--added", type=int, default=200)
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        return measure(args.measure)
    settings = prepare(args.images)
    (settings.cache_dir / pairs.FILE).unlink(missing_ok=True)
    for name in ("cold", "again"):
        r = run(settings)
        print(f"report refresh {name}: {r['s']:.2f} s, {r['images']:,} images, {r['near_groups']} near groups, "
              f"effective {r['effective']:,}, {r['kept']:,} pairs kept, peak RSS {r['rss_mb']} MiB")
    add(settings, args.images, args.added)
    r = run(settings)
    print(f"report refresh added {args.added}: {r['s']:.2f} s, {r['images']:,} images, {r['near_groups']} near groups, "
          f"effective {r['effective']:,}, {r['kept']:,} pairs kept, peak RSS {r['rss_mb']} MiB")


if __name__ == "__main__":
    main()
