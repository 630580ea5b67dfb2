"""Server time (p50/p95 of Server-Timing) of the review and quality pages at N images (issue 16: under 100 ms).

    nice -n 10 .venv/bin/python bench/review_pages.py [--images 1000000] [--requests 30]   # SQLite
    scripts/pg.sh .venv/bin/python bench/review_pages.py --pg                                # PostgreSQL

The data is bench/scale.py's seed (four sources, a quarter labelled in order and 5 % scattered, one open
flag in 97 labelled images; every image's row copies one of 20 real imports, so each pHash is shared by
N / 20 images: the worst case for the review page's near-duplicate strip) in its own data dir
(bench/out/review-N) or database (loupe_review_N), with the stored quality report refreshed by a worker
once. With --history, a year of reviewing on top: 300,000 more flags (one per labelled image: resolved or cancelled
mislabel, duplicate and audit flags) and 30,000 more open mislabel flags. Prints one line per URL: p50 and p95 of `--requests` GETs after 2 warm-ups and the server's CPU time per
request (user + system: what a busy machine does not inflate), and one summary line.
"""

from __future__ import annotations

import argparse
import os
import re

import httpx
from _server import OUT, rss_mb, serve  # also puts the repo on sys.path
from scale import cpu_ms, pct, pg_database, refresh_report, seed, server_ms
from sqlalchemy import text

from app.config import Settings

URLS = ("/review", "/review?kind=mislabel", "/review?kind=duplicate", "/review/stage", "/review/stage?kind=duplicate",
        "/quality", "/api/quality", "/api/flags?limit=50")


def add_history(settings: Settings) -> None:
    """--history: resolved and cancelled flags on every labelled image, and open ones on a tenth (once)."""
    from app.db.engine import Database

    db = Database(settings.database_url)
    json = "" if db.write_engine.dialect.name == "sqlite" else "::json"
    with db.writing() as s:
        if s.execute(text("SELECT count(*) FROM flags WHERE status <> 'open'")).scalar():
            return
        s.execute(text(f"""
            INSERT INTO flags (image_id, kind, score, suggested_class_id, status, details, created_at, resolution,
                               resolved_at, resolved_by)
            SELECT image_id, CASE image_id % 3 WHEN 0 THEN 'mislabel' WHEN 1 THEN 'duplicate' ELSE 'audit' END,
                   (image_id % 1000) / 1000.0, 1 + (class_id + 2) % 10,
                   CASE WHEN image_id % 2 = 0 THEN 'resolved' ELSE 'cancelled' END, '{{}}'{json}, CURRENT_TIMESTAMP,
                   CASE WHEN image_id % 2 = 1 THEN 'cancelled' WHEN image_id % 4 = 0 THEN 'keep' ELSE 'relabel' END,
                   CURRENT_TIMESTAMP, 'bench'
            FROM current_labels"""))
        s.execute(text(f"""
            INSERT INTO flags (image_id, kind, score, suggested_class_id, status, details, created_at)
            SELECT image_id, 'mislabel', (image_id % 997) / 997.0, 1 + (class_id + 1) % 10, 'open',
                   ('{{"label_event_id": ' || event_id || '}}'){json}, CURRENT_TIMESTAMP
            FROM current_labels WHERE image_id % 10 = 3"""))
        s.commit()
    if db.write_engine.dialect.name != "sqlite":  # as scale.seed: the plans autovacuum would settle on a minute later
        with db.write_engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE flags")
    db.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=30)
    ap.add_argument("--history", action="store_true", help="add 330,000 flags of past reviews (own data dir)")
    ap.add_argument("--pg", action="store_true", help="use the server LOUPE_TEST_DATABASE_URL names (scripts/pg.sh)")
    args = ap.parse_args()
    tag = f"{args.images}" + ("_history" if args.history else "")
    url = pg_database(os.environ["LOUPE_TEST_DATABASE_URL"], args.images, f"loupe_review_{tag}") if args.pg else ""
    name = "postgresql" if url else "sqlite"
    data = OUT / f"review-{tag}" / name
    settings = Settings(data=data, database_url=url)
    seed(settings, args.images)
    if args.history:
        add_history(settings)
        name += " with history"
    if url:
        os.environ["LOUPE_DATABASE_URL"] = settings.database_url
    with serve(data) as (base, pid), httpx.Client(base_url=base, timeout=120) as c:
        as_of = c.get("/api/quality").raise_for_status().json()["as_of"]
        if as_of is not None and as_of["job"] is None:  # past quality_live_max and none stored yet
            job, ran = refresh_report(c, data)
            print(f"review {name} {args.images}: stored report refreshed by job #{job} in {ran['job']:.1f} s", flush=True)
        stage = c.get("/review/stage").text
        skip = ",".join(re.findall(r'data-flag-id="(\d+)"', stage)[:1])
        worst = 0.0
        for page in (*URLS, f"/review/stage?skip={skip}"):
            times = [server_ms(c.get(page)) for _ in range(2)]
            cpu0 = cpu_ms(pid)
            times = [server_ms(c.get(page)) for _ in range(args.requests)]
            cpu = (cpu_ms(pid) - cpu0) / args.requests  # not inflated by a busy machine, unlike server time
            worst = max(worst, pct(times, 95))
            print(f"review {name} {args.images}: GET {page} p50 {pct(times, 50):.1f} ms p95 {pct(times, 95):.1f} ms "
                  f"(server CPU {cpu:.1f} ms a request)", flush=True)
        _, peak = rss_mb(pid)
    print(f"review {name} {args.images}: worst p95 {worst:.1f} ms ({'under' if worst < 100 else 'OVER'} 100); "
          f"server peak RSS {peak:.0f} MiB; load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
