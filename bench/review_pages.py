"""Server time (p50/p95 of Server-Timing) of the review and quality pages at N images (issue 16: under 100 ms).

    nice -n 10 .venv/bin/python bench/review_pages.py [--images 1000000] [--requests 30]   # SQLite
    scripts/pg.sh .venv/bin/python bench/review_pages.py --pg                                # PostgreSQL

The data is bench/scale.py's seed (four sources, a quarter labelled in order and 5 % scattered, one open
flag in 97 labelled images; every image's row copies one of 20 real imports, so each pHash is shared by
N / 20 images: the worst case for the review page's near-duplicate strip) in its own data dir
(bench/out/review-N) or database (loupe_review_N), with the stored quality report refreshed by a worker
once. Prints one line per URL: p50 and p95 of `--requests` GETs after 2 warm-ups and the server's CPU time per
request (user + system: what a busy machine does not inflate), and one summary line.
"""

from __future__ import annotations

import argparse
import os
import re

from _server import OUT, rss_mb, serve  # also puts the repo on sys.path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.config import Settings
from scale import cpu_ms, pct, refresh_report, seed, server_ms

URLS = ("/review", "/review?kind=mislabel", "/review?kind=duplicate", "/review/stage", "/review/stage?kind=duplicate",
        "/quality", "/api/quality", "/api/flags?limit=50")


def pg_database(server: str, n: int) -> str:
    name = f"loupe_review_{n}"
    engine = create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar():
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    engine.dispose()
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=30)
    ap.add_argument("--pg", action="store_true", help="use the server LOUPE_TEST_DATABASE_URL names (scripts/pg.sh)")
    args = ap.parse_args()
    url = pg_database(os.environ["LOUPE_TEST_DATABASE_URL"], args.images) if args.pg else ""
    name = "postgresql" if url else "sqlite"
    data = OUT / f"review-{args.images}" / name
    settings = Settings(data=data, database_url=url)
    seed(settings, args.images)
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
