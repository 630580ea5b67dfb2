"""Tag and confidence filters of /api/images and /browse (issue 16): list_images in process, as the routes call it.

    .venv/bin/python bench/filters.py DATABASE_URL [--requests 20]
    e.g. sqlite:///bench/out/scale-1000000-s4/sqlite/loupe.db (seeded by bench/scale.py)

One line per filter: p50/p95 ms of list_images (page + exact total for /api/images, page + total capped
at 1,000 for /browse), after 2 warm-ups; the database is only read.

Measured at 1,000,000 images (bench/scale.py's data, 2 shared cores), p50/p95 ms, before (JSON tags and
confidence through label_events) -> after (migration 0014's current_label_tags / current_confidences):
  SQLite      tag=dark 109/469 -> 4.3/4.4; confidence 0.5-0.7 72/85 -> 12.7/13.3; browse tag+split=val
              197/209 -> 11.4/13.2; class+source+tag (none) 73/151 -> 39/41; browse class+confidence 6.2/6.9 -> 3.9/4.3
  PostgreSQL  tag=dark 390/449 -> 8.9/10.1; confidence 121/140 -> 11.7/12.4; class+source+tag (none) 73/85 ->
              37/40; browse class+confidence 49/52 -> 13.4/16.0 (no snapshot in that seed: split=val matched none)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.db.engine import Database
from app.labelling.queries import COUNT_CAP, ImageFilter, list_images

# (name, filter, limit, count cap): the five forms bench/scale.py --pages found over 100 ms p95 at 1M images.
CASES = [
    ("/api/images?tag=dark", ImageFilter(tag="dark"), 100, None),
    ("/api/images?min_confidence=0.5&max_confidence=0.7", ImageFilter(min_confidence=0.5, max_confidence=0.7), 100,
     None),
    ("/browse?tag=blurred&split=val", ImageFilter(tag="blurred", split="val"), 120, COUNT_CAP),
    ("/api/images?class=1&source=phone&tag=blurred", ImageFilter(class_ref="1", source="phone", tag="blurred"), 100,
     None),
    ("/browse?class=1&min_confidence=0.5&max_confidence=0.7",
     ImageFilter(class_ref="1", min_confidence=0.5, max_confidence=0.7), 120, COUNT_CAP),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    ap.add_argument("--requests", type=int, default=20)
    args = ap.parse_args()
    db = Database(args.url)
    for name, f, limit, cap in CASES:
        times = []
        for i in range(args.requests + 2):
            start = time.perf_counter()
            with db.reading() as s:
                page = list_images(s, f, limit=limit, count_cap=cap)
            if i >= 2:
                times.append((time.perf_counter() - start) * 1000)
        times.sort()
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        print(f"filters {name}: p50 {statistics.median(times):.1f} ms, p95 {p95:.1f} ms "
              f"(total {page.total}, {len(page.items)} on the page, {args.requests} requests)")


if __name__ == "__main__":
    main()
